#!/usr/bin/env python3
"""Print the markdown tables of a report written by eval_general_probe.py --json."""
import json
import math
import sys


def f(x):
    return "-" if x is None or math.isnan(x) else f"{x:.3f}"


def main(path: str, methods: str = "raw,platt,contextual,probe,probe+oofplatt,probe+oofplatt+em,probe_diff+oofplatt") -> None:
    with open(path) as fh:
        r = json.load(fh)
    chosen = methods.split(",")
    print(f"model tag {r['tag']}; {r['train_questions']} training questions, {r['train_pairs']} pairs; "
          f"layer {r.get('best_layer_by_logo')}, L2 {r.get('l2_by_logo')}\n")
    for split in ("loqo", "logo", "heldout"):
        if split not in r:
            continue
        print(f"\n### {split}: mean over questions\n\n| method | AUC | min AUC | accuracy | ECE | Brier |\n|---|---|---|---|---|---|")
        for name, s in r[split]["summary"].items():
            if name in chosen or split != "loqo" and "+" not in name:
                print(f"| {name} | {f(s['auc'])} | {f(s['min_auc'])} | {f(s['accuracy'])} | {f(s['ece'])} | {f(s['brier'])} |")
    for split in ("heldout", "logo", "loqo"):
        if split not in r:
            continue
        per = r[split]["per_question"]
        cols = [m for m in chosen if m in per]
        print(f"\n### {split}: per question (AUC / accuracy / ECE)\n")
        print("| question | yes/n | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
        for q, row in per["raw"].items():
            cells = [f"{f(per[m][q]['auc'])} / {f(per[m][q]['accuracy'])} / {f(per[m][q]['ece'])}" for m in cols]
            print(f"| {q} | {row['yes']}/{row['n']} | " + " | ".join(cells) + " |")
    if "layers" in r:
        print("\n### per layer (probe on that layer's state)\n\n| layer | LOGO AUC | held-out AUC | held-out accuracy | held-out ECE |\n|---|---|---|---|---|")
        for layer, s in r["layers"].items():
            print(f"| {layer} | {f(s['logo_auc'])} | {f(s['heldout_auc'])} | {f(s['heldout_accuracy'])} | {f(s['heldout_ece'])} |")
    if "l2" in r:
        print("\nL2 by LOGO AUC: " + ", ".join(f"{k}: {f(v)}" for k, v in r["l2"].items()))
    if "variants_logo" in r:
        print("\n### variants, leave-one-genre-out\n\n| variant | AUC | accuracy | ECE |\n|---|---|---|---|")
        for name, s in r["variants_logo"].items():
            print(f"| {name} | {f(s['auc'])} | {f(s['accuracy'])} | {f(s['ece'])} |")
    if "curves" in r:
        print("\n### held-out mean AUC against training data\n")
        print("| training questions | " + " | ".join(r["curves"]["questions"]) + " |\n|---|" + "---|" * len(r["curves"]["questions"]))
        print("| AUC | " + " | ".join(f(v) for v in r["curves"]["questions"].values()) + " |")
        print("\n| training genres | " + " | ".join(r["curves"]["genres"]) + " |\n|---|" + "---|" * len(r["curves"]["genres"]))
        print("| AUC | " + " | ".join(f(v) for v in r["curves"]["genres"].values()) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
