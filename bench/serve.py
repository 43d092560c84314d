"""Run one server under uvicorn for the benchmark: `python -m bench.serve graphql|baseline`."""

import sys

import uvicorn


def main() -> None:
    kind, port, database_url, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    options: dict = {}
    if kind == "baseline":
        from bench.baseline import create_app

        app = create_app(database_url)
    else:
        from forecourt.app import create_app
        from forecourt.config import Settings

        settings = Settings(
            FORECOURT_ENV="test", FORECOURT_DATA_DIR=data_dir, JWT_SECRET="b" * 40,
            MAX_PAGE_SIZE=500, MAX_QUERY_COST=100_000, MAX_BODY_BYTES=64 * 1024 * 1024,
            RATE_LIMIT_IP_PER_MINUTE=0, RATE_LIMIT_USER_PER_MINUTE=0, RATE_LIMIT_CREDENTIALS_PER_MINUTE=0,
            REVALUE_INTERVAL_SECONDS=0,
            ARGON2_MEMORY_KIB=1024, ARGON2_TIME_COST=1,
        )
        app = create_app(settings, database_url)
        from forecourt.server import uvicorn_options

        options = uvicorn_options(settings)  # as `forecourt serve` (WS_PER_MESSAGE_DEFLATE from the environment)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **options)


if __name__ == "__main__":
    main()
