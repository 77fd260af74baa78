package io.seedsvc.cassandra;

import java.io.IOException;
import java.util.List;
import java.util.concurrent.TimeUnit;

import javax.management.JMException;

/**
 * Live reload for Cassandra 4.0+: a daemon thread that long-polls the sidecar and, when the list
 * changes, hands it to the provider and asks the in-process Gossiper to {@code reloadSeeds()}.
 *
 * <p>The loop survives every exception and linkage error (logged once per outage, then retried
 * with capped backoff); only {@link #close()} ends it. It never blocks Cassandra: getSeeds() reads what this
 * thread last stored.
 */
final class SeedReloader implements Runnable
{
    static final String THREAD_NAME = "seedsvc-seed-reloader";

    /** Receives each non-empty list from the sidecar. */
    interface SeedSink
    {
        /** @return whether the list differs from the one getSeeds() was serving */
        boolean offer(List<SeedEntry> seeds);
    }

    private final SeedFetcher fetcher;
    private final SeedSink sink;
    private final InProcessGossiper gossiper;
    private final SeedListParser.MalformedEntryListener malformed;
    private final int pollWaitSeconds;
    private final Backoff backoff;
    private final long minPollIntervalMs;

    private volatile boolean stopped;
    private Thread thread;
    // Loop state, touched only by the reloader thread.
    private Long generation;
    private boolean reloadPending;
    private String failure; // non-null while the sidecar or the reload keeps failing

    /**
     * @param initialGeneration generation of the list the provider already serves, or {@code null}
     * @param minPollIntervalMs guard against a hot loop when the sidecar answers long-polls at once
     *                          (e.g. an older sidecar that ignores {@code wait})
     */
    SeedReloader(SeedFetcher fetcher, SeedSink sink, InProcessGossiper gossiper,
                 SeedListParser.MalformedEntryListener malformed, int pollWaitSeconds, Long initialGeneration,
                 Backoff backoff, long minPollIntervalMs)
    {
        this.fetcher = fetcher;
        this.sink = sink;
        this.gossiper = gossiper;
        this.malformed = malformed;
        this.pollWaitSeconds = pollWaitSeconds;
        this.generation = initialGeneration;
        this.backoff = backoff;
        this.minPollIntervalMs = minPollIntervalMs;
    }

    synchronized void start()
    {
        if (thread != null)
            return;
        thread = new Thread(this, THREAD_NAME);
        // Daemon: the JVM's exit must not wait for a long-poll.
        thread.setDaemon(true);
        thread.start();
    }

    /**
     * Stops the loop. A request in flight is not aborted; the thread ends once it returns (at most
     * connect + read timeout + poll wait later).
     */
    synchronized void close()
    {
        stopped = true;
        if (thread != null)
            thread.interrupt();
    }

    /** @return whether the thread has ended within {@code timeoutMs} */
    boolean awaitTermination(long timeoutMs) throws InterruptedException
    {
        Thread t;
        synchronized (this)
        {
            t = thread;
        }
        if (t == null)
            return true;
        t.join(timeoutMs);
        return !t.isAlive();
    }

    @Override
    public void run()
    {
        SidecarSeedProvider.logger.info("Watching {} for seed changes (long-poll {} s)", fetcher.describe(), pollWaitSeconds);
        while (!stopped)
        {
            long delayMs;
            try
            {
                delayMs = pollOnce();
            }
            // LinkageError too: a class missing from some Cassandra build must not end live reload
            // silently; it is logged and retried like any other failure.
            catch (IOException | JMException | RuntimeException | LinkageError e)
            {
                if (stopped)
                    break; // close() aborted the request; not a failure worth a warning
                delayMs = failed(e.getClass().getSimpleName() + ": " + e.getMessage(), null);
            }
            if (delayMs > 0 && !stopped)
            {
                try
                {
                    TimeUnit.MILLISECONDS.sleep(delayMs);
                }
                catch (InterruptedException e)
                {
                    // close() interrupts; any other interrupt just shortens the wait.
                }
            }
        }
    }

    /** One request, and the reload it may trigger. @return milliseconds to wait before the next */
    long pollOnce() throws IOException, JMException
    {
        long startedNanos = System.nanoTime();
        SidecarAnswer answer = fetcher.fetch(generation, pollWaitSeconds);
        List<SeedEntry> seeds = answer.seeds(malformed);
        if (seeds.isEmpty())
            return failed(answer.summary(), answer.retryAfterSeconds);

        if (sink.offer(seeds))
            reloadPending = true;
        if (reloadPending)
        {
            if (gossiper.isRunning())
            {
                gossiper.reloadSeeds(); // throws: pending stays set and is retried after backoff
                SidecarSeedProvider.logger.info("Gossiper reloaded seeds: {}", seeds);
            }
            // Not running: nothing to do, Gossiper.start() reads getSeeds() itself.
            reloadPending = false;
        }

        if (failure != null)
            SidecarSeedProvider.logger.info("Seed watch recovered after: {}", failure);
        failure = null;
        backoff.reset();
        Long previous = generation;
        generation = answer.generation;
        if (generation == null)
            // No generation header: long-polling is impossible, fall back to plain polling.
            return TimeUnit.SECONDS.toMillis(pollWaitSeconds);
        // A new generation is a real change: ask for the next one at once, or a second change
        // within the interval would wait it out (the benchmark measured ~1 s per change that way).
        // Only an early answer without a change can be a hot loop (a sidecar ignoring wait).
        if (!generation.equals(previous))
            return 0;
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startedNanos);
        return Math.max(0, minPollIntervalMs - elapsedMs);
    }

    private long failed(String reason, Long retryAfterSeconds)
    {
        long delayMs = backoff.next();
        if (retryAfterSeconds != null)
            delayMs = Math.min(Math.max(delayMs, TimeUnit.SECONDS.toMillis(retryAfterSeconds)), backoff.maxMs());
        // One warning per outage, not one per retry.
        if (failure == null)
            SidecarSeedProvider.logger.warn("Seed watch on {} failed ({}); keeping the current seeds, retrying with backoff",
                                            fetcher.describe(), reason);
        else
            SidecarSeedProvider.logger.debug("Seed watch still failing: {}; next try in {} ms", reason, delayMs);
        failure = reason;
        return delayMs;
    }
}
