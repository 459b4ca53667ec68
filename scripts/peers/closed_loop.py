"""Closed-loop clients, shared by the load scripts: each client runs its next request when its last
one ended, until all have run."""
import threading
import time


def run_closed_loop(count, clients, run_one):
    """Runs run_one(i) for i in range(count) on `clients` threads. Returns (results by index, None
    where it raised; the errors as text; the wall time in seconds)."""
    results, errors = [None] * count, []
    next_index = [0]
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= count:
                return
            try:
                results[i] = run_one(i)
            except Exception as e:  # counted and shown: the tables' error column
                with lock:
                    errors.append(f"request {i}: {e}")

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors, time.monotonic() - start


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
