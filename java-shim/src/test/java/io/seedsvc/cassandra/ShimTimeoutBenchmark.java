package io.seedsvc.cassandra;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * The figures behind the shim's "bounded, not hanging" tests, measured rather than asserted: how
 * long after its nominal value each timeout really fires, how quickly a change reaches the reload
 * sink, how quickly close() ends a long-poll. JUnit-free; run with
 * {@code cd java-shim && mvn -B -q test-compile exec:java} (see pom.xml). Prints one line per
 * figure (median and max of several runs, in ms) and the machine's load average, which they
 * depend on.
 */
public final class ShimTimeoutBenchmark
{
    private static final int RUNS = 5;
    private static final String PADDING = new String(new char[240]).replace('\0', 'a');

    private ShimTimeoutBenchmark()
    {
    }

    /** One measured action; returns the milliseconds it took. */
    private interface Measured
    {
        long run() throws Exception;
    }

    public static void main(String[] args) throws Exception
    {
        System.out.println("seedsvc shim timeout benchmark, " + RUNS + " runs each, load average before: " + loadAverage());
        report("read_timeout_ms=300, server silent: timeout after", 300, () -> {
            try (FakeSidecar sidecar = new FakeSidecar())
            {
                sidecar.serve("10.0.0.1").delay(60_000);
                return timeFailure(new HttpSeedFetcher(new URL(sidecar.url()), 500, 300, 60_000), null, 0);
            }
        });
        report("request_timeout_ms=1000, headers dripped 1 B/250 ms: cut after", 1000, () -> {
            try (ScriptedHttpServer server = dripping())
            {
                return timeFailure(new HttpSeedFetcher(new URL(server.url()), 500, 1000, 1000), null, 0);
            }
        });
        report("request_timeout_ms=1000 + long-poll wait 1 s, dripped: cut after", 2000, () -> {
            try (ScriptedHttpServer server = dripping())
            {
                return timeFailure(new HttpSeedFetcher(new URL(server.url()), 500, 1000, 1000), 1L, 1);
            }
        });
        report("connect refused (connect_timeout_ms=60000): error after", 0, () ->
            timeFailure(new HttpSeedFetcher(new URL("http://127.0.0.1:" + Ports.closedLoopbackPort() + "/seeds"),
                                            60_000, 1000, 60_000), null, 0));
        report("live reload: second change in a row reaches the sink after", 0, ShimTimeoutBenchmark::secondChange);
        report("close() during a 300 s long-poll: reload thread ended after", 0, ShimTimeoutBenchmark::closeDuringLongPoll);
        System.out.println("load average after: " + loadAverage());
    }

    private static ScriptedHttpServer dripping() throws IOException
    {
        return new ScriptedHttpServer((request, out) -> out.drip("HTTP/1.1 200 OK\r\nX-Padding: " + PADDING, 250));
    }

    /** @return milliseconds until {@code fetch} failed, as it must */
    private static long timeFailure(HttpSeedFetcher fetcher, Long generation, int waitSeconds)
    {
        long start = System.nanoTime();
        try
        {
            fetcher.fetch(generation, waitSeconds);
            throw new AssertionError("the request did not fail");
        }
        catch (IOException expected)
        {
            return elapsedMs(start);
        }
    }

    /** With the production 1 s hot-loop guard: a change right after a change is not held back. */
    private static long secondChange() throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar())
        {
            sidecar.serve("10.0.0.1");
            List<String> offered = new CopyOnWriteArrayList<>();
            HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL(sidecar.url()), 500, 1000, 2000);
            // No Gossiper MBean registered: isRunning() is false, offers only.
            SeedReloader reloader = new SeedReloader(fetcher, seeds -> offered.add(seeds.toString()),
                                                     new InProcessGossiper(ManagementFactory.getPlatformMBeanServer()),
                                                     (entry, reason) -> { }, 30, sidecar.generation(),
                                                     new Backoff(1_000, 30_000), 1_000);
            reloader.start();
            try
            {
                sidecar.serve("10.0.0.2");
                waitFor(() -> offered.contains("[10.0.0.2]"));
                long start = System.nanoTime();
                sidecar.serve("10.0.0.3");
                waitFor(() -> offered.contains("[10.0.0.3]"));
                return elapsedMs(start);
            }
            finally
            {
                reloader.close();
                fetcher.close();
                reloader.awaitTermination(10_000);
            }
        }
    }

    private static long closeDuringLongPoll() throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar())
        {
            sidecar.serve("10.0.0.1");
            HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL(sidecar.url()), 500, 1000, 2000);
            SeedReloader reloader = new SeedReloader(fetcher, seeds -> false,
                                                     new InProcessGossiper(ManagementFactory.getPlatformMBeanServer()),
                                                     (entry, reason) -> { }, 300, sidecar.generation(),
                                                     new Backoff(1_000, 30_000), 1_000);
            reloader.start();
            waitFor(() -> sidecar.requests().stream().anyMatch(r -> r.contains("wait=300")));
            long start = System.nanoTime();
            reloader.close();
            fetcher.close();
            if (!reloader.awaitTermination(60_000))
                throw new AssertionError("reloader did not end");
            return elapsedMs(start);
        }
    }

    private interface Condition
    {
        boolean holds();
    }

    private static void waitFor(Condition condition) throws InterruptedException
    {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!condition.holds())
        {
            if (System.nanoTime() > deadline)
                throw new AssertionError("condition not met within 60 s");
            Thread.sleep(5);
        }
    }

    private static void report(String what, long nominalMs, Measured measured) throws Exception
    {
        List<Long> samples = new ArrayList<>();
        for (int i = 0; i < RUNS; i++)
            samples.add(measured.run());
        Collections.sort(samples);
        long median = samples.get(samples.size() / 2);
        long max = samples.get(samples.size() - 1);
        String overshoot = nominalMs > 0 ? String.format(" (nominal %d, max overshoot %d)", nominalMs, max - nominalMs) : "";
        System.out.printf("%-66s median %5d ms, max %5d ms%s%n", what, median, max, overshoot);
    }

    private static long elapsedMs(long startNanos)
    {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
    }

    private static String loadAverage()
    {
        try
        {
            return new String(Files.readAllBytes(Paths.get("/proc/loadavg")), StandardCharsets.US_ASCII).trim();
        }
        catch (IOException e)
        {
            return "unknown (" + e.getMessage() + ")";
        }
    }
}
