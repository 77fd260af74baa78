package io.seedsvc.cassandra;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.MalformedURLException;
import java.net.Proxy;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Future;

import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * {@link SeedFetcher} speaking HTTP/1.1 over a plain JDK socket (TLS for {@code https}), one
 * connection per request - so the shim adds no dependency to Cassandra's classpath and controls
 * every timeout itself.
 *
 * <p>{@code HttpURLConnection}, used before, bounds each read but not the request, and accepts a
 * body cut short of its {@code Content-Length} as complete; here each request has a total
 * {@link RequestDeadline} and the body must arrive whole ({@link HttpResponseReader}).
 *
 * <p>For {@code https} URLs the JDK's default trust store and host-name verification (endpoint
 * identification {@code HTTPS}) apply; the shim never installs its own trust manager. No proxy
 * is ever used and redirects are not followed: the sidecar is on loopback and never redirects.
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
    private final int requestTimeoutMs;
    private final SSLSocketFactory tls; // null: the JDK's default, looked up on the first https request
    private final Set<Socket> inFlight = Collections.newSetFromMap(new ConcurrentHashMap<Socket, Boolean>());
    private volatile boolean closed;

    /**
     * @param url              {@code GET /seeds} of the sidecar, possibly with a query
     * @param connectTimeoutMs bound on the TCP connect
     * @param readTimeoutMs    bound on waiting for each read; a long-poll adds its wait to it
     * @param requestTimeoutMs bound on the whole request, connect to last body byte; a long-poll
     *                         adds its wait to it
     */
    HttpSeedFetcher(URL url, int connectTimeoutMs, int readTimeoutMs, int requestTimeoutMs)
    {
        this(url, connectTimeoutMs, readTimeoutMs, requestTimeoutMs, null);
    }

    /** The test seam for {@code https}: {@code tls} replaces the JDK's default socket factory. */
    HttpSeedFetcher(URL url, int connectTimeoutMs, int readTimeoutMs, int requestTimeoutMs, SSLSocketFactory tls)
    {
        this.url = url;
        this.connectTimeoutMs = connectTimeoutMs;
        this.readTimeoutMs = readTimeoutMs;
        this.requestTimeoutMs = requestTimeoutMs;
        this.tls = tls;
    }

    @Override
    public SidecarAnswer fetch(Long knownGeneration, int waitSeconds) throws IOException
    {
        boolean longPoll = waitSeconds > 0 && knownGeneration != null;
        URL target = longPoll ? withQuery("wait=" + waitSeconds + "&generation=" + knownGeneration) : url;
        int waitMs = longPoll ? waitSeconds * 1000 : 0;
        RequestDeadline deadline = RequestDeadline.after((long) requestTimeoutMs + waitMs);
        // NO_PROXY: a JVM-wide socksProxyHost (set for other reasons) must never route the
        // loopback sidecar call through a proxy.
        Socket socket = new Socket(Proxy.NO_PROXY);
        inFlight.add(socket);
        // Closing the plain socket also ends a TLS session over it: one close serves both cases.
        Future<?> watchdog = deadline.closeWhenPassed(socket);
        try
        {
            if (closed)
                throw new IOException("fetcher closed");
            Socket connected = connect(socket, deadline);
            OutputStream out = connected.getOutputStream();
            out.write(request(target).getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            InputStream in = new BufferedInputStream(new DeadlineInputStream(connected, deadline, readTimeoutMs + waitMs));
            HttpResponseReader.Head head = HttpResponseReader.readHead(in);
            // Only a 200's body is used; any other answer is "no list" whatever it says.
            String body = head.status == 200
                          ? new String(HttpResponseReader.readBody(in, head, MAX_BODY_BYTES), StandardCharsets.UTF_8)
                          : "";
            return new SidecarAnswer(head.status, body,
                                     parseLong(head.header(GENERATION_HEADER)),
                                     parseLong(head.header("Retry-After")));
        }
        catch (IOException e)
        {
            if (closed)
                throw new IOException("fetcher closed", e);
            if (deadline.passed() && !(e instanceof RequestDeadline.Exceeded))
            {
                // A read or handshake cut by the time left, or the watchdog's close under a read:
                // report the deadline, not "Read timed out" or "Socket closed".
                SocketTimeoutException timeout = deadline.timeout();
                timeout.initCause(e);
                throw timeout;
            }
            throw e;
        }
        finally
        {
            watchdog.cancel(false);
            inFlight.remove(socket);
            closeQuietly(socket);
        }
    }

    @Override
    public void close()
    {
        closed = true;
        // Closing the socket makes a read blocked in another thread (a long-poll) fail at once.
        for (Socket socket : inFlight)
            closeQuietly(socket);
    }

    @Override
    public String describe()
    {
        return url.toString();
    }

    /** @return the socket to talk through: {@code socket} itself, or a TLS socket over it */
    private Socket connect(Socket socket, RequestDeadline deadline) throws IOException
    {
        String host = hostForConnect();
        int port = url.getPort() >= 0 ? url.getPort() : url.getDefaultPort();
        socket.connect(new InetSocketAddress(host, port), deadline.bound(connectTimeoutMs));
        socket.setTcpNoDelay(true);
        if (!url.getProtocol().equalsIgnoreCase("https"))
            return socket;
        SSLSocketFactory factory = tls != null ? tls : (SSLSocketFactory) SSLSocketFactory.getDefault();
        SSLSocket secure = (SSLSocket) factory.createSocket(socket, host, port, true);
        SSLParameters parameters = secure.getSSLParameters();
        // Host-name (or IP) verification against the certificate, as HttpsURLConnection does.
        parameters.setEndpointIdentificationAlgorithm("HTTPS");
        secure.setSSLParameters(parameters);
        // The handshake reads several times under this one timeout; the watchdog bounds it as a whole.
        secure.setSoTimeout(deadline.bound(readTimeoutMs));
        secure.startHandshake();
        return secure;
    }

    private String hostForConnect()
    {
        String host = url.getHost();
        // URL keeps the brackets of an IPv6 literal; the socket wants the bare address.
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    private String request(URL target)
    {
        String path = target.getFile().isEmpty() ? "/" : target.getFile();
        int port = url.getPort();
        String hostHeader = url.getHost() + (port >= 0 && port != url.getDefaultPort() ? ":" + port : "");
        return "GET " + path + " HTTP/1.1\r\n"
               + "Host: " + hostHeader + "\r\n"
               + "Accept: text/plain\r\n"
               + "User-Agent: seedsvc-cassandra-shim\r\n"
               // One request per connection: nothing half-read is ever reused.
               + "Connection: close\r\n"
               + "\r\n";
    }

    private URL withQuery(String query) throws MalformedURLException
    {
        String base = url.toString();
        return new URL(base + (url.getQuery() == null ? "?" : "&") + query);
    }

    private static void closeQuietly(Socket socket)
    {
        try
        {
            socket.close();
        }
        catch (IOException e)
        {
            // Nothing left to do with a socket that cannot even be closed.
        }
    }

    private static Long parseLong(String header)
    {
        if (header == null)
            return null;
        String text = header.trim();
        if (text.isEmpty() || text.length() > 18)
            return null;
        for (int i = 0; i < text.length(); i++)
            if (text.charAt(i) < '0' || text.charAt(i) > '9')
                return null; // e.g. Retry-After as an HTTP date: treated as absent
        return Long.parseLong(text);
    }
}
