package io.seedsvc.cassandra;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.MalformedURLException;
import java.net.Proxy;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * {@link SeedFetcher} over {@link HttpURLConnection} - the JDK's client, so the shim adds no
 * dependency to Cassandra's classpath.
 *
 * <p>For {@code https} URLs the JDK's default trust store and host-name verification apply; the
 * shim never installs its own trust manager.
 */
final class HttpSeedFetcher implements SeedFetcher
{
    /** The sidecar's own generation header (seedsvc HTTP API, docs/design.md section 3). */
    static final String GENERATION_HEADER = "X-Seedsvc-Generation";
    /** A seed list is a few hundred bytes; anything this large is not the sidecar. */
    static final int MAX_BODY_BYTES = 64 * 1024;

    private final URL url;
    private final int connectTimeoutMs;
    private final int readTimeoutMs;
    private final Set<HttpURLConnection> inFlight = Collections.newSetFromMap(new ConcurrentHashMap<HttpURLConnection, Boolean>());
    private volatile boolean closed;

    /**
     * @param url              {@code GET /seeds} of the sidecar, possibly with a query
     * @param connectTimeoutMs bound on the TCP (and TLS) connect
     * @param readTimeoutMs    bound on waiting for each read; a long-poll adds its wait to it
     */
    HttpSeedFetcher(URL url, int connectTimeoutMs, int readTimeoutMs)
    {
        this.url = url;
        this.connectTimeoutMs = connectTimeoutMs;
        this.readTimeoutMs = readTimeoutMs;
    }

    @Override
    public SidecarAnswer fetch(Long knownGeneration, int waitSeconds) throws IOException
    {
        boolean longPoll = waitSeconds > 0 && knownGeneration != null;
        URL target = longPoll ? withQuery("wait=" + waitSeconds + "&generation=" + knownGeneration) : url;
        // NO_PROXY: a JVM-wide http.proxyHost (set for other reasons) must never route the
        // loopback sidecar call through a proxy.
        HttpURLConnection conn = (HttpURLConnection) target.openConnection(Proxy.NO_PROXY);
        conn.setConnectTimeout(connectTimeoutMs);
        conn.setReadTimeout(readTimeoutMs + (longPoll ? waitSeconds * 1000 : 0));
        conn.setInstanceFollowRedirects(false); // the sidecar never redirects; don't wander off
        conn.setUseCaches(false);
        conn.setRequestProperty("Accept", "text/plain");
        inFlight.add(conn);
        try
        {
            if (closed)
                throw new IOException("fetcher closed");
            int status = conn.getResponseCode();
            InputStream in = status < 400 ? conn.getInputStream() : conn.getErrorStream();
            String body = in == null ? "" : readBounded(in);
            return new SidecarAnswer(status, body,
                                     parseLong(conn.getHeaderField(GENERATION_HEADER)),
                                     parseLong(conn.getHeaderField("Retry-After")));
        }
        catch (IOException e)
        {
            // Drop the socket rather than return a half-read connection to the keep-alive pool.
            conn.disconnect();
            throw e;
        }
        finally
        {
            inFlight.remove(conn);
        }
    }

    @Override
    public void close()
    {
        closed = true;
        // disconnect() closes the socket, so a read blocked in another thread fails at once.
        for (HttpURLConnection conn : inFlight)
            conn.disconnect();
    }

    @Override
    public String describe()
    {
        return url.toString();
    }

    private URL withQuery(String query) throws MalformedURLException
    {
        String base = url.toString();
        return new URL(base + (url.getQuery() == null ? "?" : "&") + query);
    }

    private static String readBounded(InputStream in) throws IOException
    {
        try (InputStream stream = in)
        {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[4096];
            int n;
            while ((n = stream.read(buffer)) >= 0)
            {
                out.write(buffer, 0, n);
                if (out.size() > MAX_BODY_BYTES)
                    throw new IOException("response body larger than " + MAX_BODY_BYTES + " bytes");
            }
            return new String(out.toByteArray(), StandardCharsets.UTF_8);
        }
    }

    private static Long parseLong(String header)
    {
        if (header == null)
            return null;
        try
        {
            long value = Long.parseLong(header.trim());
            return value >= 0 ? value : null;
        }
        catch (NumberFormatException e)
        {
            return null; // e.g. Retry-After as an HTTP date: treated as absent
        }
    }
}
