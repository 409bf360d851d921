from sandwich.platform.migrations import run_env

run_env()
