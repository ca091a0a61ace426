#!/usr/bin/python3
"""results_table.py RUN_DIR — the Markdown tables of a CV run folder, as committed under results/:
segqa vs naive per category and per Dice band of the real contours, the targets of issue 12 where
they apply, the validation report when there is one, and the interval coverage on held-out folds.
Reads only RUN_DIR/metrics.json (and RUN_DIR/validation/metrics.json)."""
import json
import sys

run = sys.argv[1]
m = json.load(open(run + "/metrics.json"))
s = m["summary"]
TARGETS = {"real": 0.04, "[0.85, 1]": 0.03, "gt": 0.05, "empty": 0.05, "noise": 0.05,
           "all-ones": 0.05, "shifted-gt": 0.05}


def fmt(x, p=4):
    return "–" if x is None else f"{x:.{p}f}"


def row(name, pair, target=True):
    a, b = pair["segqa"], pair["naive"]
    t = TARGETS.get(name.strip())
    mark = ""
    if target and t is not None and a["mae"] is not None:
        mark = f" ≤ {t}: **{'met' if a['mae'] <= t else 'missed'}**"
    rho = "–" if a["spearman"] is None else f"{a['spearman']:.3f}"
    acc = "–" if a["accuracy"] is None else f"{100 * a['accuracy']:.1f} %"
    return (f"| {name} | {a['n']} | {fmt(a['mae'])} ± {fmt(a['mae_sd'])} | {fmt(b['mae'])} | "
            f"{rho} | {acc} | {a['misclassified']} |{mark} |")


def table(summary, target=True):
    out = ["| samples | n | MAE segqa | MAE naive | Spearman | accuracy | misclassified | target |",
           "|---|---:|---|---|---:|---:|---:|---|"]
    cats = summary["by_category"]
    out.append(row("real", cats["real"], target))
    for band, pair in summary["real_by_band"].items():
        out.append(row(f"real, Dice {band}", pair, target) if band != "[0.85, 1]" else
                   row("[0.85, 1]", pair, target).replace("| [0.85, 1] |", "| real, Dice [0.85, 1] |"))
    for c in ["empty", "noise", "all-ones", "shifted-gt", "gt"]:
        if c in cats:
            out.append(row(c, cats[c], target))
    out.append(row("all", summary["all_samples"], False))
    return "\n".join(out)


print(table(s))
acc = s["all_samples"]["segqa"]["accuracy"]
print(f"\nAccuracy over all categories (the study's rule): {100 * acc:.2f} % "
      f"(target ≥ 99.6 %: {'met' if acc >= 0.996 else 'missed'}).")
try:
    v = json.load(open(run + "/validation/metrics.json"))["summary"]
    print("\nValidation patients (held out of each fold's training patients), last model:\n")
    print(table(v, False))
except FileNotFoundError:
    pass
for iv in m.get("intervals", []):
    print(f"\nIntervals at nominal {iv['nominal']:.2f}, coverage on held-out folds "
          f"({iv['folds']} folds):\n")
    print("| samples | n | coverage | mean width |\n|---|---:|---:|---:|")
    cells = [("all", iv["all"])]
    cells += [(f"estimate in {b}", c) for b, c in iv["by_estimate_band"].items()]
    cells += [(f"real, true Dice {b}", c) for b, c in iv["real_by_true_band"].items()]
    cells += list(iv["by_category"].items())
    for name, c in cells:
        if c["n"]:
            print(f"| {name} | {c['n']} | {100 * c['coverage']:.1f} % | {c['mean_width']:.3f} |")
