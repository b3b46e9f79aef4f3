"""The ReelGuard HTTP gateway (Litestar), settings, jobs and orchestration."""
