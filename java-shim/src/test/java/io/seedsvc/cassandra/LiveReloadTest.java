package io.seedsvc.cassandra;

import static io.seedsvc.cassandra.ProviderTesting.await;
import static io.seedsvc.cassandra.ProviderTesting.params;
import static io.seedsvc.cassandra.ProviderTesting.render;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URL;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import javax.management.MBeanServer;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The long-poll thread and the in-process {@code reloadSeeds} call, with test MBeans registered
 * under Cassandra's Gossiper (and StorageService) names on the platform MBean server.
 */
class LiveReloadTest
{
    /** Shape of the part of GossiperMBean the shim uses (Cassandra 4.0+). */
    public interface TestGossiperMBean
    {
        List<String> reloadSeeds();
    }

    /** Does what Gossiper.reloadSeeds does: asks the seed provider again and keeps the result. */
    public static final class TestGossiper implements TestGossiperMBean
    {
        volatile SidecarSeedProvider provider;
        final List<List<String>> reloads = new CopyOnWriteArrayList<>();
        final AtomicInteger failuresToInject = new AtomicInteger();

        @Override
        public List<String> reloadSeeds()
        {
            if (failuresToInject.getAndDecrement() > 0)
                throw new IllegalStateException("injected reloadSeeds failure");
            List<String> seeds = render(provider.getSeeds());
            reloads.add(seeds);
            return seeds;
        }
    }

    public interface TestStorageServiceMBean
    {
        boolean isGossipRunning();
    }

    public static final class TestStorageService implements TestStorageServiceMBean
    {
        volatile boolean gossipRunning;

        @Override
        public boolean isGossipRunning()
        {
            return gossipRunning;
        }
    }

    @TempDir
    Path dir;

    private final MBeanServer mbeans = ManagementFactory.getPlatformMBeanServer();
    private final FakeSidecar sidecar = new FakeSidecar();
    private final TestGossiper gossiper = new TestGossiper();
    private final List<SidecarSeedProvider> providers = new ArrayList<>();

    LiveReloadTest() throws IOException
    {
    }

    @BeforeEach
    void registerGossiper() throws Exception
    {
        mbeans.registerMBean(gossiper, InProcessGossiper.GOSSIPER);
    }

    @AfterEach
    void tearDown() throws Exception
    {
        sidecar.close();
        ProviderTesting.closeAll(providers);
        for (javax.management.ObjectName name : Arrays.asList(InProcessGossiper.GOSSIPER, InProcessGossiper.STORAGE_SERVICE))
            if (mbeans.isRegistered(name))
                mbeans.unregisterMBean(name);
    }

    private SidecarSeedProvider start(String... extra)
    {
        Map<String, String> p = params("url", sidecar.url(), "poll_wait_seconds", "1", "startup_wait_ms", "2000");
        p.putAll(params(extra));
        SidecarSeedProvider provider = new SidecarSeedProvider(p);
        providers.add(provider);
        gossiper.provider = provider;
        provider.getSeeds();
        return provider;
    }

    @Test
    void aChangedListReachesGossiperThroughReloadSeeds() throws Exception
    {
        Path cacheFile = dir.resolve("seeds.cache");
        sidecar.serve("10.0.0.1,10.0.0.2");
        SidecarSeedProvider provider = start("cache_file", cacheFile.toString());
        assertTrue(gossiper.reloads.isEmpty(), "no reload for the list Cassandra started with");

        sidecar.serve("10.0.0.2,10.0.0.3");
        await("reloadSeeds", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Arrays.asList("10.0.0.2:7000", "10.0.0.3:7000"), gossiper.reloads.get(0));
        assertEquals(Arrays.asList("10.0.0.2:7000", "10.0.0.3:7000"), render(provider.getSeeds()));
        assertEquals("10.0.0.2,10.0.0.3\n", new String(Files.readAllBytes(cacheFile), StandardCharsets.UTF_8));
        assertTrue(sidecar.requests().stream().anyMatch(r -> r.contains("wait=1&generation=")), sidecar.requests().toString());
    }

    @Test
    void changesInQuickSuccessionAreNotHeldBackByTheMinimumPollInterval() throws Exception
    {
        // The hot-loop guard is made an hour long here: if it applied after a real change, the
        // second change would wait it out, so a generous bound tells the two apart on any
        // machine. (The 1 s guard of production and the time a change takes: ShimTimeoutBenchmark.)
        mbeans.registerMBean(new TestStorageService(), InProcessGossiper.STORAGE_SERVICE); // gossip off: no reload
        sidecar.serve("10.0.0.1");
        List<String> offered = new CopyOnWriteArrayList<>();
        HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL(sidecar.url()), 500, 1000, 2000);
        SeedReloader reloader = new SeedReloader(fetcher, seeds -> offered.add(seeds.toString()),
                                                 new InProcessGossiper(mbeans), (entry, reason) -> { },
                                                 30, sidecar.generation(), new Backoff(1_000, 30_000), 3_600_000);
        reloader.start();
        try
        {
            sidecar.serve("10.0.0.2");
            await("the first change", 30_000, () -> offered.contains("[10.0.0.2]"));
            sidecar.serve("10.0.0.3");
            await("the second change", 30_000, () -> offered.contains("[10.0.0.3]"));
        }
        finally
        {
            reloader.close();
            fetcher.close();
            assertTrue(reloader.awaitTermination(10_000), "reloader thread did not stop");
        }
    }

    @Test
    void aLongPollDrippedByTheSidecarIsCutAtItsDeadlineAndRetried() throws Exception
    {
        // Immediate requests get a list; every long-poll gets headers dripped a byte per 250 ms
        // for a minute - within each read timeout, so only the request deadline (1 s + the 1 s
        // wait) ends it, and the watch then retries.
        String padding = new String(new char[240]).replace('\0', 'a');
        try (ScriptedHttpServer dripping = new ScriptedHttpServer((request, out) -> {
                 if (!request.contains("wait="))
                     out.send("HTTP/1.1 200 OK\r\nX-Seedsvc-Generation: 1\r\nContent-Length: 8\r\n\r\n10.0.0.1");
                 else
                     out.drip("HTTP/1.1 200 OK\r\nX-Padding: " + padding, 250);
             }))
        {
            Map<String, String> p = params("url", dripping.url(), "poll_wait_seconds", "1", "request_timeout_ms", "1000");
            SidecarSeedProvider provider = new SidecarSeedProvider(p);
            providers.add(provider);
            assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()));
            await("a second long-poll after the first was cut", 30_000,
                  () -> dripping.requests().stream().filter(r -> r.contains("wait=1&generation=1")).count() >= 2);
            assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()), "kept meanwhile");
            assertTrue(ProviderTesting.reloaderThreadAlive());
        }
    }

    @Test
    void anUnchangedListCausesNoReload() throws Exception
    {
        sidecar.serve("10.0.0.1");
        start();
        sidecar.serve("10.0.0.1"); // new generation, same seeds
        await("a few polls", 30_000, () -> sidecar.requests().size() >= 3);
        assertTrue(gossiper.reloads.isEmpty());
    }

    @Test
    void noReloadWhileGossipIsNotRunningButGetSeedsHasTheNewList() throws Exception
    {
        TestStorageService storage = new TestStorageService();
        mbeans.registerMBean(storage, InProcessGossiper.STORAGE_SERVICE);
        sidecar.serve("10.0.0.1");
        SidecarSeedProvider provider = start();
        sidecar.serve("10.0.0.4");
        await("new list served", 30_000, () -> render(provider.getSeeds()).equals(Collections.singletonList("10.0.0.4:7000")));
        Thread.sleep(300);
        assertTrue(gossiper.reloads.isEmpty(), "Gossiper.start() reads getSeeds() itself");

        storage.gossipRunning = true;
        sidecar.serve("10.0.0.5");
        await("reload once gossip runs", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Collections.singletonList("10.0.0.5:7000"), gossiper.reloads.get(0));
    }

    @Test
    void theThreadSurvivesSidecarOutagesAndGarbage() throws Exception
    {
        sidecar.serve("10.0.0.1");
        SidecarSeedProvider provider = start();
        sidecar.respond(500, "internal error", null);
        await("polls during the error", 30_000, () -> sidecar.requests().size() >= 3);
        sidecar.serve("");
        sidecar.serve("<html>garbage</html>");
        sidecar.unavailable(1);
        Thread.sleep(1_500);
        assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()), "kept while failing");
        assertTrue(ProviderTesting.reloaderThreadAlive());

        sidecar.serve("10.0.0.9");
        await("reload after recovery", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Collections.singletonList("10.0.0.9:7000"), gossiper.reloads.get(0));
    }

    @Test
    void aFailedReloadSeedsIsRetried() throws Exception
    {
        gossiper.failuresToInject.set(1);
        sidecar.serve("10.0.0.1");
        start();
        sidecar.serve("10.0.0.2");
        await("retried reload", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Collections.singletonList("10.0.0.2:7000"), gossiper.reloads.get(0));
        assertTrue(gossiper.failuresToInject.get() < 0, "the first call failed");
    }

    @Test
    void withoutTheGenerationHeaderItFallsBackToPlainPolling() throws Exception
    {
        sidecar.withoutGenerationHeader().serve("10.0.0.1");
        start();
        sidecar.serve("10.0.0.2");
        await("reload by polling", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Collections.singletonList("10.0.0.2:7000"), gossiper.reloads.get(0));
        assertFalse(sidecar.requests().stream().anyMatch(r -> r.contains("wait=")), "no long-poll without a generation");
    }

    @Test
    void startsWatchingEvenWhenStartupFellBackToStaticSeeds() throws Exception
    {
        sidecar.unavailable(1);
        SidecarSeedProvider provider = start("startup_wait_ms", "0", "seeds", "10.9.9.9");
        assertEquals(Collections.singletonList("10.9.9.9:7000"), render(provider.getSeeds()));
        sidecar.serve("10.0.0.1");
        await("reload with the sidecar's list", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Collections.singletonList("10.0.0.1:7000"), gossiper.reloads.get(0));
    }

    @Test
    void closeAbortsAPendingLongPollAtOnce() throws Exception
    {
        sidecar.serve("10.0.0.1");
        SidecarSeedProvider provider = start("poll_wait_seconds", "300");
        await("a long-poll in flight", 30_000, () -> sidecar.requests().stream().anyMatch(r -> r.contains("wait=300")));
        // Left alone the poll would take 300 s (+ the request timeout); ending within a generous
        // 20 s proves close() aborted it.
        provider.close();
        assertTrue(provider.awaitClosed(20_000), "reloader still blocked in its long-poll");
        assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()), "still answers after close");
    }

    @Test
    void liveReloadFalseStartsNoThread()
    {
        sidecar.serve("10.0.0.1");
        start("live_reload", "false");
        assertFalse(ProviderTesting.reloaderThreadAlive());
    }
}
