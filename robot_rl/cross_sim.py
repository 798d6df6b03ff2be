"""Cross-simulator evaluation: one exported policy, zero-shot, in several physics engines.

`robot-rl cross-sim --artifact DIR [--backends mujoco pybullet --episodes 100 --dr eval --out DIR]`
evaluates the artifact (`robot_rl.evaluate_artifact`) on each simulator with the same task, DR
mode and seed, so that every simulator sees the same episodes (targets, DR samples, observation
noise and pushes come from the env's generator in the same order; only the physics differs), and
writes

* `cross_sim.json`: success rate, mean/std return and episode length per simulator, the spread
  (max - min over simulators) and each simulator's gap to the first one (the training simulator),
  with the per-episode values;
* `cross_sim.png`: success rate and mean return (± std) per simulator, side by side.

A policy that only works in the simulator it was trained in (it exploits that engine's integrator
or contact model) shows up as a gap; the same robot, URDF, actuator model and gravity
compensation are used in every engine (`robot_rl.sim.pybullet_backend`).
"""

from __future__ import annotations

from pathlib import Path

from robot_rl.artifact import PolicyArtifact

SUMMARY_FIELDS = ("success_rate", "mean_return", "std_return", "mean_episode_length", "wall_s")


def cross_sim_report(artifact: str | Path, backends=("mujoco", "pybullet"), episodes: int = 100, dr: str = "eval",
                     seed: int = 1, out_dir: str | Path | None = None, device: str = "cpu",
                     nthread: int | None = None) -> dict:
    """Evaluate `artifact` on every backend; write `cross_sim.json` and `cross_sim.png` to
    `out_dir` (default: `<artifact>_cross_sim` next to the artifact) and return the report."""
    from robot_rl.evaluate import write_json_atomic
    from robot_rl.evaluate_artifact import evaluate_artifact
    from robot_rl.sim.backend import backend_class

    backends = list(dict.fromkeys(backends))
    if not backends:
        raise ValueError("give at least one backend")
    for b in backends:  # fail on a missing simulator before running any
        backend_class(b)
    art = PolicyArtifact.load(artifact)
    out = Path(out_dir) if out_dir else art.path.parent / f"{art.path.name}_cross_sim"
    from robot_rl.evaluate_artifact import comparable_dr

    drange, note = comparable_dr(art.spec["task"], dr, backends)  # like with like on every simulator
    results = {b: evaluate_artifact(art, episodes, drange, seed, backend=b, device=device, nthread=nthread)
               for b in backends}
    ref = backends[0]
    sims = {b: {k: r[k] for k in SUMMARY_FIELDS} for b, r in results.items()}
    report = {
        "artifact": str(art.path),
        "task": art.spec["task"],
        "kind": art.kind,
        "dr": dr,
        "dr_note": note,
        "episodes": episodes,
        "seed": seed,
        "reference": ref,
        "simulators": sims,
        "spread": {k: max(s[k] for s in sims.values()) - min(s[k] for s in sims.values())
                   for k in ("success_rate", "mean_return")},
        "gap_to_reference": {b: {k: sims[b][k] - sims[ref][k] for k in ("success_rate", "mean_return")}
                             for b in backends},
        "per_episode": {b: r["per_episode"] for b, r in results.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "cross_sim.json", report)
    plot(report, out / "cross_sim.png")
    report["json"] = str(out / "cross_sim.json")
    report["png"] = str(out / "cross_sim.png")
    return report


def plot(report: dict, path: Path) -> None:
    """Success rate and mean return (± std) per simulator, as two bar charts side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sims = report["simulators"]
    names = list(sims)
    colors = [f"C{i}" for i in range(len(names))]
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
    success = [100.0 * sims[n]["success_rate"] for n in names]
    bars = ax_s.bar(names, success, color=colors)
    ax_s.bar_label(bars, fmt="%.0f%%")
    ax_s.set_ylim(0, 105)
    ax_s.set_ylabel("success rate (%)")
    ax_s.set_title("success")
    ret = [sims[n]["mean_return"] for n in names]
    std = [sims[n]["std_return"] for n in names]
    bars = ax_r.bar(names, ret, yerr=std, capsize=6, color=colors)
    ax_r.bar_label(bars, fmt="%.1f", label_type="center")
    ax_r.axhline(0.0, color="0.5", lw=0.8)
    ax_r.set_ylabel("episode return")
    ax_r.set_title("mean return (± std)")
    fig.suptitle(f"{report['task']}: {Path(report['artifact']).name}, dr={report['dr']}, "
                 f"{report['episodes']} episodes per simulator", fontsize=10)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
