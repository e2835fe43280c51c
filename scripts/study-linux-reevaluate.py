#!/usr/bin/env python3
"""Re-evaluates the study's finished runs on the validation windows as evaluation now
picks them (spread over the whole split, 2026-12-04) and rewrites their results.

Until then evaluation read the split's first windows (the first few held-out files),
which on the linux corpus read 0.7-1.0 nats above the rest. Every finished run still has
its final checkpoint, so its final validation loss is recomputed with the same number of
windows as its config gives; lr_result.json, each part's results.json and the sweep's
results.json take the new value (the old one is kept as final_val_loss_first_windows).
metrics.jsonl is left as it was written. Runs already re-evaluated are skipped.

    scripts/study-linux-reevaluate.py BITNET_TRAIN [STUDY_DIR] [DATA_DIR]
"""
import json, os, subprocess, sys

binary = sys.argv[1]
study = sys.argv[2] if len(sys.argv) > 2 else "runs/study-linux"
data = sys.argv[3] if len(sys.argv) > 3 else "runs/linux-data"
KEY, OLD = "final_val_loss", "final_val_loss_first_windows"


def evaluate(run):
    config = json.load(open(os.path.join(run, "config.json")))
    windows = config["training"]["eval_windows"]
    out = subprocess.run([binary, "eval", run, "--data", data, "--windows", str(windows), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["val_loss"], windows


def write(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


for part in sorted(os.listdir(study)):
    directory = os.path.join(study, part)
    results_path = os.path.join(directory, "results.json")
    if not os.path.isfile(results_path):
        continue
    results = json.load(open(results_path))
    changed = False
    for entry in results:
        if OLD in entry:
            continue
        if "run" in entry:  # a sweep's result
            run = os.path.join(directory, "runs", entry["run"])
        else:  # an lr-sweep's result
            run = os.path.join(directory, "runs", "%s-lr%g" % (entry["mode"], entry["learning_rate"]))
        lr_result = os.path.join(run, "lr_result.json")
        if os.path.isfile(lr_result) and OLD in json.load(open(lr_result)):
            continue  # re-evaluated before (lr-sweep rewrites its results.json from these)
        if not os.path.isfile(os.path.join(run, "checkpoint.safetensors")):
            print("%s: no checkpoint, left as it was" % run)
            continue
        loss, windows = evaluate(run)
        print("%s: %.4f on the first %d windows, %.4f on %d spread" % (run, entry[KEY], windows, loss, windows))
        entry[OLD], entry[KEY] = entry[KEY], loss
        changed = True
        if os.path.isfile(lr_result):
            own = json.load(open(lr_result))
            own[OLD], own[KEY] = own[KEY], loss
            write(lr_result, own)
    if changed:
        write(results_path, results)
