#!/usr/bin/python3
"""soak.py SEGQA EPOCHS MPIRUN... — many short epochs of a tiny model on 3 oversubscribed ranks
(`segqa train`, real mpirun); every rank's RSS and open file descriptors are sampled from /proc
every 0.25 s and printed about once per epoch. After a warm-up third and while epochs run, the
slope of each rank's per-epoch RSS floor (least squares over epochs) must stay under 2 MB per 100
epochs and the fd count may not grow by more than 2.
ctest test_soak runs 200 epochs (about 45 s on 2 cores), 50 in the sanitizer build."""
import os, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "..", "datasets", "msd-hippocampus")


def ranks():
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
        except OSError:
            continue
        if b"segqa-soak" not in cmd or b"train" not in cmd:
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                out[int(e.split(b"=")[1])] = int(p)
    return out


def sample(pid):
    try:
        rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")][0]
        return int(rss.split()[1]) / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError):
        return None


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def main():
    segqa, epochs, mpirun = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    tmp = tempfile.mkdtemp(prefix="segqa-soak-")
    q = dict(stdout=subprocess.DEVNULL)
    subprocess.run([segqa, "ingest", data, "-o", f"{tmp}/gt.h5", "--shape", "8x8x8", "--limit", "6",
                    "-q"], check=True, **q)
    subprocess.run([segqa, "contours", f"{tmp}/gt.h5", "-o", f"{tmp}/site.h5", "--atlas", "1",
                    "--perturb", "0", "--near", "0", "-q"], check=True, **q)
    cmd = mpirun + ["-np", "3", segqa, "train", f"{tmp}/site.h5", "--out", f"{tmp}/run",
                    "--epochs", str(epochs), "--batch", "1", "--fpn-channels", "8", "--fpn-repeats",
                    "1", "--threads", "1", "--workers", "1", "--no-figures", "--val-every",
                    str(max(epochs // 4, 1)), "--augment", "none", "-q"]
    t0 = time.time()
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    series = {}
    last_print = 0
    while job.poll() is None:
        try:
            done = sum(1 for _ in open(f"{tmp}/run/all/curves.csv"))
        except OSError:
            done = 0
        for r, pid in ranks().items():
            s = sample(pid)
            if s:  # (seconds, RSS MB, fds, epochs done when sampled)
                series.setdefault(r, []).append((time.time() - t0, *s, done))
        if done != last_print and series:
            last_print = done
            print(f"epoch {done:4d}: " + "  ".join(
                f"r{r} RSS {v[-1][1]:7.1f} MB fds {v[-1][2]:3d}" for r, v in sorted(series.items())))
        time.sleep(0.25)
    out = job.stdout.read()
    took = time.time() - t0
    errors = []
    if job.returncode != 0:
        errors.append(f"train exit {job.returncode}: {out[-2000:]}")
    for r, v in sorted(series.items()):
        # after a warm-up third, and only while epochs run: once the last epoch is logged, rank 0
        # writes the final checkpoint and report, whose memory is not a per-epoch leak
        v = [x for x in v[len(v) // 3 :] if x[3] < epochs]
        if len(v) < 4:
            errors.append(f"rank {r}: only {len(v)} samples after warm-up")
            continue
        # the floor of each epoch (its smallest RSS sample) against the epoch: transient peaks
        # such as a validation pass's buffers do not move it, a leak raises every later floor
        floor = {}
        for x in v:
            floor[x[3]] = min(floor.get(x[3], x[1]), x[1])
        es = sorted(floor)
        s_mb = slope(es, [floor[e] for e in es]) * 100 if len(es) > 1 else 0.0  # MB per 100 epochs
        fd_growth = v[-1][2] - min(x[2] for x in v)
        print(f"rank {r}: RSS {v[0][1]:.1f} -> {v[-1][1]:.1f} MB, slope {s_mb:+.3f} MB / 100 "
              f"epochs, fds {min(x[2] for x in v)}..{max(x[2] for x in v)}")
        if s_mb > 2.0:
            errors.append(f"rank {r}: RSS grows {s_mb:.2f} MB per 100 epochs")
        if fd_growth > 2:
            errors.append(f"rank {r}: open fds grew by {fd_growth}")
    if len(series) != 3:
        errors.append(f"sampled {len(series)} ranks, expected 3")
    print(f"{epochs} epochs on 3 ranks in {took:.1f} s")
    for e in errors:
        print("FAIL", e)
    subprocess.run(["rm", "-rf", tmp])
    print(f"{0 if errors else 1} passed, {1 if errors else 0} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
