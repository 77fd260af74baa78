package io.seedsvc.cassandra;

import static io.seedsvc.cassandra.ProviderTesting.params;
import static io.seedsvc.cassandra.ProviderTesting.render;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.cassandra.exceptions.ConfigurationException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Start-up, fallback and never-empty behaviour, against a real loopback HTTP server. */
class SidecarSeedProviderTest
{
    @TempDir
    Path dir;

    private final FakeSidecar sidecar = new FakeSidecar();
    private final List<SidecarSeedProvider> providers = new ArrayList<>();

    SidecarSeedProviderTest() throws IOException
    {
    }

    @AfterEach
    void tearDown() throws InterruptedException
    {
        sidecar.close();
        ProviderTesting.closeAll(providers);
    }

    /** A provider without live reload unless the test asks, with the given extra parameters. */
    private SidecarSeedProvider provider(String... keyValues)
    {
        Map<String, String> p = params("url", sidecar.url(), "live_reload", "false", "startup_wait_ms", "2000");
        p.putAll(params(keyValues));
        return track(new SidecarSeedProvider(p));
    }

    private SidecarSeedProvider track(SidecarSeedProvider p)
    {
        providers.add(p);
        return p;
    }

    private String deadUrl() throws IOException
    {
        return "http://127.0.0.1:" + Ports.closedLoopbackPort() + "/seeds";
    }

    @Test
    void servesTheSidecarsListAsInetAddressAndPortWithCassandrasDefaultPort()
    {
        sidecar.serve("10.0.0.1,10.0.0.2,10.0.0.3");
        List<?> seeds = provider().getSeeds();
        assertEquals(Arrays.asList("10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"), render(seeds));
        assertEquals(CassandraEndpoints.INET_ADDRESS_AND_PORT, seeds.get(0).getClass().getName());
        assertThrows(UnsupportedOperationException.class, () -> seeds.remove(0));
    }

    @Test
    void readsWhitespaceNewlinesIpv6AndPorts()
    {
        sidecar.serve(" fd00::1 ,\n[::1]:7001,10.0.0.3:7002\n");
        assertEquals(Arrays.asList("[fd00:0:0:0:0:0:0:1]:7000", "[0:0:0:0:0:0:0:1]:7001", "10.0.0.3:7002"),
                     render(provider().getSeeds()));
    }

    @Test
    void skipsGarbageEntriesFromTheSidecar()
    {
        sidecar.serve("10.0.0.1,cassandra-1,10.0.0.999,,<b>oops</b>,10.0.0.2");
        assertEquals(Arrays.asList("10.0.0.1:7000", "10.0.0.2:7000"), render(provider().getSeeds()));
    }

    @Test
    void waitsThrough503UntilTheSidecarHasAList() throws Exception
    {
        sidecar.unavailable(0);
        // A long start-up wait: returning with the sidecar's list (not the static one) is what
        // proves the wait ended when the list came; the time bound only says it did not hang.
        SidecarSeedProvider provider = provider("startup_wait_ms", "120000", "seeds", "10.9.9.9");
        Thread later = new Thread(() -> {
            try
            {
                Thread.sleep(700);
                sidecar.serve("10.0.0.7");
            }
            catch (InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        });
        long start = System.nanoTime();
        later.start();
        List<?> seeds = provider.getSeeds();
        later.join();
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertEquals(Collections.singletonList("10.0.0.7:7000"), render(seeds));
        assertTrue(elapsedMs >= 600 && elapsedMs < 60_000, "elapsed " + elapsedMs);
        assertTrue(sidecar.requests().size() >= 2, "retried: " + sidecar.requests());
    }

    @Test
    void neverAcceptsAnEmptyOrAllGarbage200() throws Exception
    {
        sidecar.serve("");
        assertEquals(Collections.singletonList("10.9.9.9:7000"),
                     render(provider("startup_wait_ms", "300", "seeds", "10.9.9.9").getSeeds()));
        sidecar.serve("not-an-address, 300.1.1.1");
        assertEquals(Collections.singletonList("10.9.9.8:7000"),
                     render(provider("startup_wait_ms", "300", "seeds", "10.9.9.8").getSeeds()));
    }

    @Test
    void writesTheCacheFileAndUsesItWhenTheSidecarIsDown() throws Exception
    {
        Path cacheFile = dir.resolve("state/seeds.cache");
        sidecar.serve("10.0.0.1,[fd00::2]:7001");
        provider("cache_file", cacheFile.toString()).getSeeds();
        assertEquals("10.0.0.1,[fd00:0:0:0:0:0:0:2]:7001\n", new String(Files.readAllBytes(cacheFile), StandardCharsets.UTF_8));

        // A restart while the sidecar is down: the cache wins over the static seeds.
        SidecarSeedProvider restarted = provider("url", deadUrl(), "startup_wait_ms", "300",
                                                 "cache_file", cacheFile.toString(), "seeds", "10.9.9.9");
        assertEquals(Arrays.asList("10.0.0.1:7000", "[fd00:0:0:0:0:0:0:2]:7001"), render(restarted.getSeeds()));
    }

    @Test
    void fallsBackToStaticSeedsIncludingHostNames() throws Exception
    {
        SidecarSeedProvider provider = provider("url", deadUrl(), "startup_wait_ms", "0",
                                                "cache_file", dir.resolve("absent").toString(),
                                                "seeds", "10.0.0.5, localhost:7005, [::1]:7006, bad_entry");
        List<String> seeds = render(provider.getSeeds());
        assertEquals("10.0.0.5:7000", seeds.get(0));
        assertEquals(InetAddress.getByName("localhost").getHostAddress(),
                     seeds.get(1).replaceAll("^\\[?(.*?)]?:7005$", "$1"));
        assertEquals("[0:0:0:0:0:0:0:1]:7006", seeds.get(2));
        assertEquals(3, seeds.size());
    }

    @Test
    void failsStartupWithOneMessageNamingEverySourceTried() throws Exception
    {
        String url = deadUrl();
        Path cacheFile = dir.resolve("missing.cache");
        SidecarSeedProvider provider = provider("url", url, "startup_wait_ms", "400", "cache_file", cacheFile.toString());
        long start = System.nanoTime();
        ConfigurationException e = assertThrows(ConfigurationException.class, provider::getSeeds);
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(elapsedMs >= 350 && elapsedMs < 30_000, "elapsed " + elapsedMs);
        assertFalse(e.logStackTrace, "an expected failure: Cassandra should print just the message");
        String message = e.getMessage();
        assertTrue(message.contains("sidecar " + url), message);
        assertTrue(message.contains("ConnectException"), message);
        assertTrue(message.contains("in 400 ms"), message);
        assertTrue(message.contains("cache_file " + cacheFile.toAbsolutePath()), message);
        assertTrue(message.contains("static seeds not set"), message);
        assertFalse(message.contains("\n"), "one line: " + message);
    }

    @Test
    void startupFailureNamesUnusableStaticSeeds() throws Exception
    {
        sidecar.unavailable(1);
        // RFC 6761: .invalid never resolves.
        SidecarSeedProvider provider = provider("startup_wait_ms", "200", "seeds", "no-such-host.invalid");
        ConfigurationException e = assertThrows(ConfigurationException.class, provider::getSeeds);
        assertTrue(e.getMessage().contains("HTTP 503"), e.getMessage());
        assertTrue(e.getMessage().contains("static seeds 'no-such-host.invalid' - no usable entry"), e.getMessage());
    }

    @Test
    void invalidParametersAreReportedByTheFirstGetSeedsNotTheConstructor()
    {
        // Cassandra turns a constructor exception into "null\nFatal configuration error".
        SidecarSeedProvider provider = provider("connect_timeout_ms", "soon");
        ConfigurationException e = assertThrows(ConfigurationException.class, provider::getSeeds);
        assertEquals("seedsvc SidecarSeedProvider: invalid seed_provider parameters: "
                     + "connect_timeout_ms: not a whole number: 'soon'", e.getMessage());
        assertThrows(ConfigurationException.class, () -> provider("url", "ftp://x/seeds").getSeeds());
        assertThrows(ConfigurationException.class, () -> provider("live_reload", "yes").getSeeds());
        assertThrows(ConfigurationException.class, () -> provider("read_timeout_ms", "0").getSeeds());
        ConfigurationException request = assertThrows(ConfigurationException.class,
                                                      () -> provider("request_timeout_ms", "60001").getSeeds());
        assertTrue(request.getMessage().endsWith("request_timeout_ms: 60001 is outside 1..60000"), request.getMessage());
        ConfigurationException url = assertThrows(ConfigurationException.class,
                                                  () -> provider("url", "http://127.0.0.1:8080/seeds?a=b HTTP/1.0").getSeeds());
        assertTrue(url.getMessage().contains("url: a space, control or non-ASCII character"), url.getMessage());
        ConfigurationException noSeeds = assertThrows(ConfigurationException.class,
                                                      () -> provider("seeds", "garbage!, 10.0.0.300").getSeeds());
        assertTrue(noSeeds.getMessage().endsWith("seeds: no valid entry in 'garbage!, 10.0.0.300'"), noSeeds.getMessage());
    }

    @Test
    void aSlowSidecarCannotHoldStartupBeyondItsTimeouts()
    {
        // A two-minute hang against a 200 ms read timeout; the bound is generous (a loaded
        // machine) yet far below the hang. Figures: ShimTimeoutBenchmark.
        sidecar.serve("10.0.0.1").delay(120_000);
        SidecarSeedProvider provider = provider("read_timeout_ms", "200", "startup_wait_ms", "0", "seeds", "10.9.9.9");
        long start = System.nanoTime();
        assertEquals(Collections.singletonList("10.9.9.9:7000"), render(provider.getSeeds()));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(elapsedMs < 30_000, "elapsed " + elapsedMs);
    }

    @Test
    void aSidecarDrippingItsAnswerCannotHoldStartupPastTheRequestDeadline() throws Exception
    {
        // One byte per 250 ms for a minute: every read is within read_timeout_ms, only the
        // request deadline (1 s here) can stop it.
        String padding = new String(new char[240]).replace('\0', 'a');
        try (ScriptedHttpServer dripping = new ScriptedHttpServer((request, out) ->
                 out.drip("HTTP/1.1 200 OK\r\nX-Padding: " + padding + "\r\nContent-Length: 8\r\n\r\n10.0.0.1", 250)))
        {
            SidecarSeedProvider provider = provider("url", dripping.url(), "read_timeout_ms", "1000",
                                                    "request_timeout_ms", "1000", "startup_wait_ms", "0",
                                                    "seeds", "10.9.9.9");
            long start = System.nanoTime();
            assertEquals(Collections.singletonList("10.9.9.9:7000"), render(provider.getSeeds()));
            long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertTrue(elapsedMs < 20_000, "elapsed " + elapsedMs);
        }
    }

    @Test
    void aBodyCutShortIsNeverServedNorCached() throws Exception
    {
        Path cacheFile = dir.resolve("seeds.cache");
        // 19 bytes announced ("10.0.0.12,10.0.0.10"), 18 sent: 10.0.0.1 was never an address.
        try (ScriptedHttpServer cutting = new ScriptedHttpServer((request, out) ->
                 out.send("HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n10.0.0.12,10.0.0.1")))
        {
            SidecarSeedProvider provider = provider("url", cutting.url(), "startup_wait_ms", "0",
                                                    "cache_file", cacheFile.toString(), "seeds", "10.9.9.9");
            assertEquals(Collections.singletonList("10.9.9.9:7000"), render(provider.getSeeds()));
            assertFalse(Files.exists(cacheFile), "nothing from a cut body is cached");
        }
    }

    @Test
    void aByteOrderMarkBeforeTheListCostsNoEntry()
    {
        sidecar.serve("\uFEFF10.0.0.1,10.0.0.2\n");
        assertEquals(Arrays.asList("10.0.0.1:7000", "10.0.0.2:7000"), render(provider().getSeeds()));
    }

    @Test
    void unspecifiedMulticastAndBroadcastAddressesAreNeverSeeds()
    {
        sidecar.serve("0.0.0.0,224.0.0.1,10.0.0.1,ff02::1,::,255.255.255.255");
        assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider().getSeeds()));

        ConfigurationException e = assertThrows(ConfigurationException.class,
                                                () -> provider("seeds", "0.0.0.0, 239.1.1.1:7000, [ff02::1]:7000").getSeeds());
        assertTrue(e.getMessage().endsWith("seeds: no valid entry in '0.0.0.0, 239.1.1.1:7000, [ff02::1]:7000'"), e.getMessage());
        sidecar.serve("0.0.0.0");
        assertEquals(Collections.singletonList("10.9.9.9:7000"),
                     render(provider("startup_wait_ms", "0", "seeds", "::, 10.9.9.9").getSeeds()));
    }

    @Test
    void withoutLiveReloadEachCallAsksTheSidecarAndUpdatesTheCache() throws Exception
    {
        Path cacheFile = dir.resolve("seeds.cache");
        sidecar.serve("10.0.0.1");
        SidecarSeedProvider provider = provider("cache_file", cacheFile.toString());
        assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()));
        sidecar.serve("10.0.0.2,10.0.0.3");
        assertEquals(Arrays.asList("10.0.0.2:7000", "10.0.0.3:7000"), render(provider.getSeeds()));
        assertEquals("10.0.0.2,10.0.0.3\n", new String(Files.readAllBytes(cacheFile), StandardCharsets.UTF_8));
    }

    @Test
    void onceRunningNeverReturnsEmptyAndNeverThrows() throws Exception
    {
        sidecar.serve("10.0.0.1,10.0.0.2");
        SidecarSeedProvider provider = provider();
        List<?> first = provider.getSeeds();
        for (Runnable breakIt : Arrays.<Runnable>asList(
                 () -> sidecar.serve(""),
                 () -> sidecar.serve("garbage"),
                 () -> sidecar.unavailable(1),
                 () -> sidecar.respond(500, "boom", null),
                 sidecar::close))
        {
            breakIt.run();
            List<?> seeds = provider.getSeeds();
            assertFalse(seeds.isEmpty());
            assertEquals(render(first), render(seeds));
        }
    }

    @Test
    void anExceptionFromTheFetcherNeverEscapesOnceRunning()
    {
        AtomicInteger calls = new AtomicInteger();
        SeedFetcher flaky = new SeedFetcher()
        {
            @Override
            public SidecarAnswer fetch(Long knownGeneration, int waitSeconds)
            {
                if (calls.incrementAndGet() == 1)
                    return new SidecarAnswer(200, "10.0.0.1", 1L, null);
                throw new IllegalStateException("bug in a fetcher");
            }

            @Override
            public String describe()
            {
                return "flaky";
            }

            @Override
            public void close()
            {
            }
        };
        SidecarSeedProvider provider = track(new SidecarSeedProvider(params("live_reload", "false"), flaky));
        List<?> first = provider.getSeeds();
        assertSame(first, provider.getSeeds());
        assertEquals(2, calls.get());
    }

    @Test
    void afterAFailedFetchLaterCallsSkipTheNetworkForAWhile() throws Exception
    {
        sidecar.serve("10.0.0.1");
        SidecarSeedProvider provider = provider();
        provider.getSeeds();
        sidecar.unavailable(1);
        provider.getSeeds(); // fails, starts the hold-off
        int requests = sidecar.requests().size();
        for (int i = 0; i < 5; i++)
            assertEquals(Collections.singletonList("10.0.0.1:7000"), render(provider.getSeeds()));
        assertEquals(requests, sidecar.requests().size(), "no request during the hold-off");
    }

    @Test
    void liveReloadIsOnByDefaultOnCassandra4AndLaterCallsAnswerFromMemory() throws Exception
    {
        sidecar.serve("10.0.0.1");
        Map<String, String> p = params("url", sidecar.url(), "poll_wait_seconds", "1");
        SidecarSeedProvider provider = track(new SidecarSeedProvider(p));
        List<?> first = provider.getSeeds();
        assertTrue(ProviderTesting.reloaderThreadAlive());
        assertSame(first, provider.getSeeds());
    }
}
