"""Command-line entry point: ``python main.py [command] ...`` (default command: train).

    python main.py -m LightGCN -d scientific                 # train (runs the model's YAML grid)
    python main.py -m VBPR -d scientific --set learning_rate=0.005 embedding_size=32
    python main.py leaderboard -d scientific                 # best config per model, side by side

Each command lives in ``src/cli/<command>.py``; ``python main.py <command> -h`` shows its options.
"""
import sys

from src.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
