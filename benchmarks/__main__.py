"""Entry point: `python -m benchmarks [--quick] [--runs N] [--sections ...]`."""

from benchmarks.runner import main

if __name__ == "__main__":
    main()
