package io.seedsvc.cassandra;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

/**
 * A real HTTP server on 127.0.0.1 (ephemeral port) that plays the seedsvc sidecar's
 * {@code GET /seeds}: programmable status, body, delay and headers, generation counting and
 * long-poll ({@code ?wait=&generation=}) as in docs/design.md section 3.
 */
final class FakeSidecar implements AutoCloseable
{
    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "fake-sidecar");
        t.setDaemon(true);
        return t;
    });

    // Guarded by this.
    private int status = 503;
    private String body = "";
    private Long retryAfter = 1L;
    private long generation;
    private long delayMs;
    private boolean sendGeneration = true;
    private final List<String> requests = new ArrayList<>();

    FakeSidecar() throws IOException
    {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/seeds", this::handle);
        server.setExecutor(executor);
        server.start();
    }

    String url()
    {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/seeds";
    }

    /** 200 with {@code seedsBody}; a new generation, waking long-polls. */
    synchronized FakeSidecar serve(String seedsBody)
    {
        return respond(200, seedsBody, null);
    }

    /** 503 with Retry-After, as the sidecar does while it has no list. */
    synchronized FakeSidecar unavailable(long retryAfterSeconds)
    {
        return respond(503, "no seeds yet\n", retryAfterSeconds);
    }

    synchronized FakeSidecar respond(int newStatus, String newBody, Long newRetryAfter)
    {
        status = newStatus;
        body = newBody;
        retryAfter = newRetryAfter;
        generation++;
        notifyAll();
        return this;
    }

    /** Delay before every answer (a hung sidecar). */
    synchronized FakeSidecar delay(long ms)
    {
        delayMs = ms;
        return this;
    }

    /** Stop sending X-Seedsvc-Generation (an older sidecar). */
    synchronized FakeSidecar withoutGenerationHeader()
    {
        sendGeneration = false;
        return this;
    }

    synchronized long generation()
    {
        return generation;
    }

    synchronized List<String> requests()
    {
        return new ArrayList<>(requests);
    }

    @Override
    public void close()
    {
        synchronized (this)
        {
            notifyAll();
        }
        server.stop(0);
        executor.shutdownNow();
    }

    private void handle(HttpExchange exchange) throws IOException
    {
        try
        {
            int answerStatus;
            String answerBody;
            Long answerRetryAfter;
            long answerGeneration;
            boolean withGeneration;
            long sleep;
            synchronized (this)
            {
                URI uri = exchange.getRequestURI();
                requests.add(uri.toString());
                Map<String, String> query = query(uri.getRawQuery());
                if (query.containsKey("wait") && query.containsKey("generation"))
                {
                    long known = Long.parseLong(query.get("generation"));
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(query.get("wait")));
                    while (generation <= known && System.nanoTime() < deadline)
                        wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
                }
                answerStatus = status;
                answerBody = body;
                answerRetryAfter = retryAfter;
                answerGeneration = generation;
                withGeneration = sendGeneration;
                sleep = delayMs;
            }
            if (sleep > 0)
                Thread.sleep(sleep);
            byte[] bytes = answerBody.getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            exchange.getResponseHeaders().set("ETag", "\"" + answerGeneration + "\"");
            if (withGeneration)
                exchange.getResponseHeaders().set("X-Seedsvc-Generation", Long.toString(answerGeneration));
            if (answerRetryAfter != null)
                exchange.getResponseHeaders().set("Retry-After", Long.toString(answerRetryAfter));
            exchange.sendResponseHeaders(answerStatus, bytes.length == 0 ? -1 : bytes.length);
            try (OutputStream out = exchange.getResponseBody())
            {
                out.write(bytes);
            }
        }
        catch (InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
        finally
        {
            exchange.close();
        }
    }

    private static Map<String, String> query(String raw)
    {
        Map<String, String> out = new HashMap<>();
        if (raw == null)
            return out;
        for (String pair : raw.split("&"))
        {
            int eq = pair.indexOf('=');
            if (eq > 0)
                out.put(pair.substring(0, eq), pair.substring(eq + 1));
        }
        return out;
    }
}
