// Retrying without a storm: every client retry waits longer after each failure in a row (exponential
// backoff with jitter, capped), and a success starts the count again.

/** The wait before retry number `attempt` (0 = the first): base × 2^attempt, at most max, ±20%. */
export function backoffDelay(attempt, { base = 1000, max = 30000 } = {}) {
  const raw = Math.min(max, base * 2 ** Math.min(attempt, 16));
  return Math.round(raw * (0.8 + Math.random() * 0.4));
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Failures in a row of one kind of work, and the wait before its next try. */
export class Backoff {
  constructor(options = {}) {
    this.options = options;
    this.failures = 0;
  }

  /** Wait before the next try (longer after every failure since the last success). */
  wait() {
    return sleep(backoffDelay(this.failures++, this.options));
  }

  /** It worked: the next failure waits the shortest time again. */
  succeeded() {
    this.failures = 0;
  }
}
