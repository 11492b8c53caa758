"""``python main.py inspect -d <dataset> [--code v:121-7] [--item 42] [--export codes.tsv]``:
what a trained tokenising model's codes mean."""
from __future__ import annotations

from src.cli._common import overrides_of
from src.cli._saved_run import load_saved_run
from src.common.nn import tokens
from src.common.config import ConfigError
from src.common.storage import atomic_write_text

HELP = "show what the codes of a trained MoToRec mean: the items and words behind a code, an item's code neighbours"


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True)
    parser.add_argument("-m", "--model", default="MoToRec", help="a model with item codes (default MoToRec)")
    parser.add_argument("--run", dest="run_id", help="run id or folder (default: the best run by valid metric)")
    parser.add_argument("--label", help="pick the best run of this leaderboard label (e.g. 'MoToRec w/o CL')")
    parser.add_argument("--code", action="append", default=[], metavar="MOD:C1-C2-..",
                        help="items using a code and their most frequent words, e.g. v:121 (level-1 image "
                             "code 121), v:121-7 (a prefix), t:*-*-9 (level-3 text code 9); repeatable")
    parser.add_argument("--item", type=int, action="append", default=[], help="an item's codes and the items "
                        "sharing most codes with it; repeatable")
    parser.add_argument("--top", type=int, default=10, help="items / words to list (default 10)")
    parser.add_argument("--export", metavar="PATH", help="write every item's code string to PATH "
                        "(TSV: itemID, codes); default <run folder>/codes.tsv")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="results_dir=... (where the run is), threads=1, device=cpu")


def run(args) -> int:
    saved = load_saved_run(args.dataset, args.model, args.run_id, args.label, overrides_of(args))
    if not hasattr(saved.model, "code_table") or not saved.model.code_table():
        raise ConfigError(f"run {saved.run_dir.name} has no item codes (a model without tokens, or use_rqvae=false)")
    codes = saved.model.code_table()
    texts = tokens.read_item_text(saved.dataset.item_text_path)
    sources = saved.dataset.original_ids("item")

    def item(i) -> str:  # "item 42" or, with MMRec's i_id_mapping.csv, "item 42 (B0048KGFHU)"
        return f"item {i} ({sources[int(i)]})" if sources and sources[int(i)] else f"item {i}"

    degree = saved.dataset.item_degree
    out = args.export or saved.run_dir / "codes.tsv"
    atomic_write_text(out, "itemID\tcodes\n" + "".join(f"{i}\t{tokens.code_string(codes, i)}\n"
                                                        for i in range(saved.dataset.n_items)))
    print(f"# {saved.config.model} run {saved.run_dir.name} on {saved.config.dataset}: codes of "
          f"{saved.dataset.n_items} items written to {out}\n")
    print("| modality | level | codes used | perplexity | unused codes |\n|---|---|---|---|---|")
    for r in saved.model.codebook_health():
        print(f"| {r['modality']} | {r['level']} | {r['used']:.1%} of {saved.config.codebook_size} | "
              f"{r['perplexity']:.0f} | {r['dead']} |")
    for text in args.code:
        try:
            modality, pattern = tokens.parse_code(text, codes)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        items = tokens.items_with_code(codes, modality, pattern)
        print(f"\n## code {text} ({modality}, levels {'-'.join('*' if c is None else str(c) for c in pattern)}): "
              f"{len(items)} item(s), {int((degree[items] < saved.config.cold_threshold).sum())} cold")
        if texts:
            print("most frequent words: " + ", ".join(f"{w} ({n})" for w, n in tokens.top_words(texts, items, args.top)))
        for i in items[:args.top]:
            print(f"- {item(i)} (train degree {degree[i]}) {tokens.code_string(codes, i)}  {texts.get(int(i), '')[:90]}")
    for chosen in args.item:
        if not 0 <= chosen < saved.dataset.n_items:
            raise ConfigError(f"--item {chosen}: ids run from 0 to {saved.dataset.n_items - 1}")
        print(f"\n## {item(chosen)} (train degree {degree[chosen]}): {tokens.code_string(codes, chosen)}  "
              f"{texts.get(chosen, '')[:90]}")
        print("items sharing most codes (shared codes / shared prefix levels):")
        for other, shared, prefix in tokens.items_sharing_codes(codes, chosen, args.top):
            print(f"- {item(other)} ({shared}/{prefix}) {tokens.code_string(codes, other)}  {texts.get(other, '')[:80]}")
    return 0


