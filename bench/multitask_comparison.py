"""Multi-task vs single-task training with the same step budget (the README's table).

    python apps/train.py --flagfile=configs/multitask.flags --model_dir=runs/multitask
    python apps/evaluate.py --model_dir=runs/multitask
    python bench/multitask_comparison.py --multitask_dir=runs/multitask \
        [--workdir=runs/comparison] [--tasks=sentiment,qa]

For each task, trains a single-task model with the same flags (`--flagfile` of the
multi-task run with `--task=<task>`: same backbone preset, steps, batch size, learning rate,
decoding), so every single-task step spends its whole batch on that task, while the
multi-task model split each batch between four. Runs already in the workdir (with a
`test_metrics.json`) are reused, so two processes with different `--tasks` can share the
work. Prints a table of test scores (with each task's baseline) and a JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The figures compared per task: (key in the task's report, label).
FIGURES = {"sentiment": [("accuracy", "accuracy"), ("macro_f1", "macro-F1")],
           "qa": [("exact_match", "EM"), ("f1", "F1")],
           "translation": [("bleu", "BLEU"), ("chrf", "chrF")],
           "summarization": [("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")]}


def app(name, *args):
    subprocess.run([sys.executable, os.path.join(ROOT, "apps", f"{name}.py"), *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def single_task_run(task, flagfile, workdir):
    """Train and evaluate `task` alone (if not done yet); its test report and fit time."""
    model_dir = os.path.join(workdir, task)
    metrics = os.path.join(model_dir, "test_metrics.json")
    if not os.path.exists(metrics):
        start = time.perf_counter()
        app("train", f"--flagfile={flagfile}", f"--task={task}", f"--model_dir={model_dir}")
        print(f"{task}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        app("evaluate", f"--model_dir={model_dir}")
    with open(metrics) as f:
        report = json.load(f)
    with open(os.path.join(model_dir, "progress.json")) as f:
        return report, json.load(f)


def directory_size(path, sub=""):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in
               os.walk(os.path.join(path, sub)) for f in files)


def export_sizes(model_dir):
    """Bytes of the multi-task SavedModel (and its variables/) against its four heads
    exported one by one, each with its own copy of the backbone."""
    import tempfile  # noqa: PLC0415

    from kerlm import export, tasks, training  # noqa: PLC0415 (imports TensorFlow)

    task = tasks.restore_task(model_dir)
    model = training.load_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        multi = export.export_task(task, model, tmp)
        singles = [export.export_task(sub, model.heads[name], tmp, name=name)
                   for name, sub in task.tasks.items()]
        return {"multitask_bytes": directory_size(multi),
                "multitask_variables_bytes": directory_size(multi, "variables"),
                "separate_bytes": sum(directory_size(p) for p in singles),
                "separate_variables_bytes": sum(directory_size(p, "variables")
                                                for p in singles)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--multitask_dir", required=True,
                        help="A trained and evaluated --task=multitask run.")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "comparison"))
    parser.add_argument("--tasks", default="", help="Train only these (default: the "
                        "multi-task run's tasks).")
    args = parser.parse_args()
    with open(os.path.join(args.multitask_dir, "config.json")) as f:
        tasks = json.load(f)["multitask"]["tasks"].split(",")
    flagfile = os.path.join(ROOT, "configs", "multitask.flags")
    for task in (args.tasks.split(",") if args.tasks else tasks):
        single_task_run(task, flagfile, args.workdir)
    with open(os.path.join(args.multitask_dir, "test_metrics.json")) as f:
        multitask = json.load(f)
    with open(os.path.join(args.multitask_dir, "progress.json")) as f:
        multitask_progress = json.load(f)

    rows, results = [], {}
    for task in tasks:
        if not os.path.exists(os.path.join(args.workdir, task, "test_metrics.json")):
            continue
        single, progress = single_task_run(task, flagfile, args.workdir)
        baseline = next(k for k in single if k != "model")
        for key, label in FIGURES[task]:
            value_multi = multitask["model"][f"{task}/{key}"]
            value_single = single["model"][key]
            results[f"{task}/{key}"] = {"multitask": value_multi, "single_task": value_single,
                                        baseline: single[baseline].get(key)}
            scale = 100.0 if task == "sentiment" else 1.0
            rows.append(f"| {task} | {label} | {scale * value_multi:.1f} | "
                        f"{scale * value_single:.1f} | {baseline}: "
                        f"{scale * single[baseline].get(key, float('nan')):.1f} |")
        results[f"{task}/steps"] = progress["steps"]
        results[f"{task}/fit_seconds"] = progress["fit_seconds"]
    print(f"multi-task: {multitask_progress['steps']} steps, fit "
          f"{multitask_progress['fit_seconds']:.0f} s; single-task fit seconds: "
          + ", ".join(f"{t} {results[f'{t}/fit_seconds']:.0f}" for t in tasks
                      if f"{t}/fit_seconds" in results))
    sizes = export_sizes(args.multitask_dir)
    results.update(sizes)
    print(f"SavedModel: one multi-task export {sizes['multitask_bytes'] / 1e6:.1f} MB "
          f"(variables {sizes['multitask_variables_bytes'] / 1e6:.1f} MB) vs four "
          f"single-head exports {sizes['separate_bytes'] / 1e6:.1f} MB (variables "
          f"{sizes['separate_variables_bytes'] / 1e6:.1f} MB)")
    print("| task | figure | multi-task | single-task | baseline |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
