package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class HttpSeedFetcherTest
{
    private final FakeSidecar sidecar = new FakeSidecar();

    HttpSeedFetcherTest() throws IOException
    {
    }

    @AfterEach
    void stop()
    {
        sidecar.close();
    }

    private HttpSeedFetcher fetcher(String url, int readTimeoutMs) throws IOException
    {
        return new HttpSeedFetcher(new URL(url), 500, readTimeoutMs, 60_000);
    }

    @Test
    void returnsBodyAndGenerationOfA200() throws Exception
    {
        sidecar.serve("10.0.0.1,10.0.0.2\n");
        SidecarAnswer answer = fetcher(sidecar.url(), 1000).fetch(null, 0);
        assertEquals(200, answer.status);
        assertEquals("10.0.0.1,10.0.0.2\n", answer.body);
        assertEquals(Long.valueOf(sidecar.generation()), answer.generation);
        assertEquals(2, answer.seeds((e, r) -> { }).size());
    }

    @Test
    void returns503WithRetryAfterAsAnAnswerWithoutSeeds() throws Exception
    {
        sidecar.unavailable(7);
        SidecarAnswer answer = fetcher(sidecar.url(), 1000).fetch(null, 0);
        assertEquals(503, answer.status);
        assertEquals(Long.valueOf(7), answer.retryAfterSeconds);
        assertTrue(answer.seeds((e, r) -> { }).isEmpty());
        assertEquals("HTTP 503 (Retry-After 7s)", answer.summary());
    }

    @Test
    void anEmpty200GivesNoSeeds() throws Exception
    {
        sidecar.serve("");
        SidecarAnswer answer = fetcher(sidecar.url(), 1000).fetch(null, 0);
        assertEquals(200, answer.status);
        assertTrue(answer.seeds((e, r) -> { }).isEmpty());
        assertEquals("HTTP 200 with an empty body", answer.summary());
    }

    @Test
    void respectsTheReadTimeoutOfASlowSidecar() throws Exception
    {
        // A two-minute hang against a 300 ms read timeout: any bound well below two minutes
        // proves the timeout, and a generous one holds on a loaded machine. Figures:
        // ShimTimeoutBenchmark.
        sidecar.serve("10.0.0.1").delay(120_000);
        HttpSeedFetcher fetcher = fetcher(sidecar.url(), 300);
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> fetcher.fetch(null, 0));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(elapsedMs >= 250 && elapsedMs < 30_000, "elapsed " + elapsedMs + " ms");
        assertTrue(e.getMessage().contains("read_timeout_ms"), e.getMessage());
    }

    @Test
    void failsAtOnceWhenNothingListensInsteadOfWaitingOutTheConnectTimeout() throws Exception
    {
        // Connect and request timeouts of a minute: a refused connect must not wait for either.
        HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL("http://127.0.0.1:" + Ports.closedLoopbackPort() + "/seeds"),
                                                      60_000, 1000, 60_000);
        long start = System.nanoTime();
        assertThrows(ConnectException.class, () -> fetcher.fetch(null, 0));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(elapsedMs < 30_000, "elapsed " + elapsedMs + " ms");
    }

    @Test
    void longPollsWithWaitAndGenerationAndExtendsItsReadTimeout() throws Exception
    {
        sidecar.serve("10.0.0.1");
        long known = sidecar.generation();
        // Read timeout 300 ms, but the long-poll must be allowed wait + 300 ms.
        HttpSeedFetcher fetcher = fetcher(sidecar.url(), 300);
        CompletableFuture<SidecarAnswer> poll = CompletableFuture.supplyAsync(() -> {
            try
            {
                return fetcher.fetch(known, 5);
            }
            catch (IOException e)
            {
                throw new RuntimeException(e);
            }
        });
        Thread.sleep(800);
        sidecar.serve("10.0.0.2");
        SidecarAnswer answer = poll.get(60, TimeUnit.SECONDS);
        assertEquals("10.0.0.2", answer.body);
        assertEquals(Long.valueOf(known + 1), answer.generation);
        assertEquals("/seeds?wait=5&generation=" + known, sidecar.requests().get(0));
    }

    @Test
    void appendsLongPollParametersToAnExistingQuery() throws Exception
    {
        sidecar.serve("10.0.0.1");
        fetcher(sidecar.url() + "?pod=cassandra-1", 1000).fetch(1L, 1);
        assertEquals("/seeds?pod=cassandra-1&wait=1&generation=1", sidecar.requests().get(0));
    }

    @Test
    void missingOrInvalidHeadersAreAbsent() throws Exception
    {
        sidecar.withoutGenerationHeader().respond(503, "", null);
        SidecarAnswer answer = fetcher(sidecar.url(), 1000).fetch(null, 0);
        assertNull(answer.generation);
        assertNull(answer.retryAfterSeconds);
    }

    @Test
    void refusesAnOversizedBody() throws Exception
    {
        StringBuilder huge = new StringBuilder();
        while (huge.length() <= HttpSeedFetcher.MAX_BODY_BYTES)
            huge.append("10.0.0.1,");
        sidecar.serve(huge.toString());
        IOException e = assertThrows(IOException.class, () -> fetcher(sidecar.url(), 1000).fetch(null, 0));
        assertTrue(e.getMessage().contains("larger than"), e.getMessage());
    }
}
