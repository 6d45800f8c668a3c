"""`python -m tunegate`: the CLI. Guarded so that a library that starts a child process by
re-running the main module (vLLM's engine, multiprocessing's spawn) does not start the CLI again."""

from tunegate.cli import main

if __name__ == "__main__":
    main()
