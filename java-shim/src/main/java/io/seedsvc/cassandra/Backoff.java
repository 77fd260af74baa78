package io.seedsvc.cassandra;

/**
 * Capped exponential backoff: {@code initial}, doubling per failure, never above {@code max}.
 * No jitter: each node talks to its own loopback sidecar, so there is no herd to spread.
 * Not thread-safe; one instance per loop.
 */
final class Backoff
{
    private final long initialMs;
    private final long maxMs;
    private long nextMs;

    Backoff(long initialMs, long maxMs)
    {
        this.initialMs = initialMs;
        this.maxMs = maxMs;
        this.nextMs = initialMs;
    }

    /** @return the delay to sleep now; the following one doubles, up to the cap */
    long next()
    {
        long delay = nextMs;
        nextMs = Math.min(maxMs, nextMs * 2);
        return delay;
    }

    /** After a success the next failure starts small again. */
    void reset()
    {
        nextMs = initialMs;
    }

    long maxMs()
    {
        return maxMs;
    }
}
