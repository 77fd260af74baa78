package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link HttpSeedFetcher} against a server that misbehaves on purpose, over real loopback
 * sockets: dripped headers and bodies (the request deadline), bodies cut short or unframed
 * (never a shorter list).
 *
 * <p>Time bounds are generous on purpose (the suite must hold on a 2-core machine at load 15):
 * each drip lasts far longer than the bound, so passing proves the deadline, not a fast machine.
 * The figures themselves are measured by ShimTimeoutBenchmark.
 */
class HostileSidecarTest
{
    /** One byte every 250 ms: each read succeeds well within a 1 s read timeout. */
    private static final long DRIP_MS = 250;
    /** 240 bytes at DRIP_MS: a minute of dripping, far past every bound asserted here. */
    private static final String PADDING = new String(new char[240]).replace('\0', 'a');
    /** Far below the minute a drip lasts, far above the 1-2 s deadlines on any machine. */
    private static final long GENEROUS_BOUND_MS = 20_000;

    private ScriptedHttpServer server;

    @AfterEach
    void stop()
    {
        if (server != null)
            server.close();
    }

    private SidecarAnswer fetch(ScriptedHttpServer.Script script) throws IOException
    {
        server = new ScriptedHttpServer(script);
        // read 1000 ms, request 1000 ms: the set-up (connect 500, read 1000).
        return new HttpSeedFetcher(new URL(server.url()), 500, 1000, 1000).fetch(null, 0);
    }

    private static void assertDeadline(long startNanos, SocketTimeoutException e)
    {
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
        assertTrue(elapsedMs >= 900, "cut before the deadline: " + elapsedMs + " ms");
        assertTrue(elapsedMs < GENEROUS_BOUND_MS, "elapsed " + elapsedMs + " ms");
        assertTrue(e.getMessage().contains("request_timeout_ms"), e.getMessage());
    }

    @Test
    void aBodyDrippedWithinEachReadTimeoutIsCutAtTheRequestDeadline()
    {
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> fetch((request, out) -> {
            String body = "10.0.0.1," + PADDING;
            out.send("HTTP/1.1 200 OK\r\nContent-Length: " + body.length() + "\r\n\r\n");
            out.drip(body, DRIP_MS);
        }));
        assertDeadline(start, e);
    }

    @Test
    void headersDrippedWithinEachReadTimeoutAreCutAtTheRequestDeadline()
    {
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> fetch((request, out) ->
            out.drip("HTTP/1.1 200 OK\r\nX-Padding: " + PADDING + "\r\nContent-Length: 8\r\n\r\n10.0.0.1", DRIP_MS)));
        assertDeadline(start, e);
    }

    @Test
    void aLongPollIsGivenItsWaitOnTopOfTheRequestDeadline() throws Exception
    {
        server = new ScriptedHttpServer((request, out) -> out.drip("HTTP/1.1 200 OK\r\nX-Padding: " + PADDING, DRIP_MS));
        HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL(server.url()), 500, 1000, 1000);
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> fetcher.fetch(7L, 1));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        // 1 s of wait + 1 s of request: not before 2 s, and not the minute the drip lasts.
        assertTrue(elapsedMs >= 1_900 && elapsedMs < GENEROUS_BOUND_MS, "elapsed " + elapsedMs + " ms");
        assertTrue(e.getMessage().contains("within 2000 ms"), e.getMessage());
    }

    @Test
    void aBodyCutShortOfItsContentLengthIsRefusedNotShortened()
    {
        // "10.0.0.12,10.0.0.10" announced, the last byte never sent: 10.0.0.1 was never an address.
        IOException e = assertThrows(IOException.class, () -> fetch((request, out) ->
            out.send("HTTP/1.1 200 OK\r\nContent-Length: 19\r\nX-Seedsvc-Generation: 3\r\n\r\n10.0.0.12,10.0.0.1")));
        assertTrue(e.getMessage().contains("cut short: 18 of 19 bytes"), e.getMessage());
    }

    @Test
    void aChunkedBodyCutBeforeItsLastChunkIsRefused()
    {
        IOException e = assertThrows(IOException.class, () -> fetch((request, out) ->
            out.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n12\r\n10.0.0.12,10.0.0.1\r\n")));
        assertTrue(e.getMessage().contains("cut short"), e.getMessage());
    }

    @Test
    void aChunkedBodyCutInsideAChunkIsRefused()
    {
        IOException e = assertThrows(IOException.class, () -> fetch((request, out) ->
            out.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n13\r\n10.0.0.12,10.0.0.1")));
        assertTrue(e.getMessage().contains("cut short"), e.getMessage());
    }

    @Test
    void aCompleteChunkedBodyIsAccepted() throws Exception
    {
        SidecarAnswer answer = fetch((request, out) -> out.send(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Seedsvc-Generation: 4\r\n\r\n"
            + "9;ext=1\r\n10.0.0.1,\r\n8\r\n10.0.0.2\r\n0\r\nX-Trailer: t\r\n\r\n"));
        assertEquals(200, answer.status);
        assertEquals("10.0.0.1,10.0.0.2", answer.body);
        assertEquals(Long.valueOf(4), answer.generation);
    }

    @Test
    void aBodyWithoutFramingIsRefusedBecauseACutCannotBeSeen()
    {
        IOException e = assertThrows(IOException.class, () -> fetch((request, out) ->
            out.send("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n10.0.0.12,10.0.0.1")));
        assertTrue(e.getMessage().contains("neither Content-Length nor chunked"), e.getMessage());
    }

    @Test
    void ambiguousFramingIsRefused()
    {
        IOException both = assertThrows(IOException.class, () -> fetch((request, out) -> out.send(
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n10.0.0.1\r\n0\r\n\r\n")));
        assertTrue(both.getMessage().contains("both Transfer-Encoding and Content-Length"), both.getMessage());
        IOException conflicting = assertThrows(IOException.class, () -> fetchAgain((request, out) -> out.send(
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\n10.0.0.1,")));
        assertTrue(conflicting.getMessage().contains("conflicting Content-Length"), conflicting.getMessage());
    }

    @Test
    void aConnectionClosedBeforeAnyAnswerIsAnError()
    {
        IOException e = assertThrows(IOException.class, () -> fetch((request, out) -> { }));
        assertTrue(e.getMessage().contains("closed before any response"), e.getMessage());
    }

    @Test
    void theRequestIsOneHttp11GetWithHostAndConnectionClose() throws Exception
    {
        SidecarAnswer answer = fetch((request, out) -> out.send("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n"));
        assertEquals(503, answer.status);
        assertEquals(Long.valueOf(2), answer.retryAfterSeconds);
        String head = server.requests().get(0);
        assertTrue(head.startsWith("GET /seeds HTTP/1.1\r\n"), head);
        assertTrue(head.contains("\r\nHost: 127.0.0.1:"), head);
        assertTrue(head.contains("\r\nConnection: close\r\n"), head);
    }

    private SidecarAnswer fetchAgain(ScriptedHttpServer.Script script) throws Exception
    {
        server.close();
        return fetch(script);
    }
}
