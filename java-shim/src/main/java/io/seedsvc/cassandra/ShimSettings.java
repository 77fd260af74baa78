package io.seedsvc.cassandra;

import java.net.MalformedURLException;
import java.net.URL;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The {@code seed_provider.parameters} of cassandra.yaml, validated once. Every parameter is
 * optional; defaults and their reasons are beside each constant. Documented for operators in
 * docs/java-shim.md.
 */
final class ShimSettings
{
    static final String URL_PARAM = "url";
    static final String CONNECT_TIMEOUT_MS = "connect_timeout_ms";
    static final String READ_TIMEOUT_MS = "read_timeout_ms";
    static final String REQUEST_TIMEOUT_MS = "request_timeout_ms";
    static final String STARTUP_WAIT_MS = "startup_wait_ms";
    static final String SEEDS = "seeds";
    static final String CACHE_FILE = "cache_file";
    static final String LIVE_RELOAD = "live_reload";
    static final String POLL_WAIT_SECONDS = "poll_wait_seconds";

    private static final Set<String> KNOWN = Collections.unmodifiableSet(new HashSet<>(Arrays.asList(
        URL_PARAM, CONNECT_TIMEOUT_MS, READ_TIMEOUT_MS, REQUEST_TIMEOUT_MS, STARTUP_WAIT_MS, SEEDS, CACHE_FILE, LIVE_RELOAD,
        POLL_WAIT_SECONDS)));

    /** The sidecar listens on loopback in the same pod (seedsvc's default port). */
    static final String DEFAULT_URL = "http://127.0.0.1:8080/seeds";
    /**
     * Short: Cassandra calls getSeeds() several times on its main thread while starting, and a
     * loopback connect either succeeds in microseconds or is refused at once.
     */
    static final int DEFAULT_CONNECT_TIMEOUT_MS = 500;
    /** Short for the same reason; the sidecar answers from memory. */
    static final int DEFAULT_READ_TIMEOUT_MS = 1000;
    /**
     * The whole request, connect to last body byte (a long-poll adds its wait): the read timeout
     * bounds each read only, so a peer dripping a byte per read could otherwise hold Cassandra's
     * main thread indefinitely. Connect plus one slow read fit; a dripped answer does not.
     */
    static final int DEFAULT_REQUEST_TIMEOUT_MS = 2000;
    /**
     * How long the first getSeeds() retries the sidecar before falling back to the cache file and
     * static seeds: long enough for the sidecar container to start and list the Kubernetes
     * endpoints, short enough that a broken sidecar shows up as a failed start within a minute.
     */
    static final long DEFAULT_STARTUP_WAIT_MS = 60_000;
    /** Long-poll wait; below the usual 60 s idle timeouts of proxies and HTTP servers. */
    static final int DEFAULT_POLL_WAIT_SECONDS = 30;

    final URL url;
    final int connectTimeoutMs;
    final int readTimeoutMs;
    final int requestTimeoutMs;
    final long startupWaitMs;
    final String staticSeeds;     // raw text, "" when unset; parsed by the provider
    final Path cacheFile;         // null when unset
    final Boolean liveReload;     // null = default for the running Cassandra version
    final int pollWaitSeconds;
    final Set<String> unknownParameters;

    private ShimSettings(Map<String, String> p)
    {
        url = parseUrl(value(p, URL_PARAM, DEFAULT_URL));
        connectTimeoutMs = (int) parseLong(p, CONNECT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, 1, 60_000);
        readTimeoutMs = (int) parseLong(p, READ_TIMEOUT_MS, DEFAULT_READ_TIMEOUT_MS, 1, 60_000);
        requestTimeoutMs = (int) parseLong(p, REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, 1, 60_000);
        startupWaitMs = parseLong(p, STARTUP_WAIT_MS, DEFAULT_STARTUP_WAIT_MS, 0, 3_600_000);
        staticSeeds = value(p, SEEDS, "");
        cacheFile = parsePath(value(p, CACHE_FILE, ""));
        liveReload = parseBoolean(value(p, LIVE_RELOAD, ""));
        pollWaitSeconds = (int) parseLong(p, POLL_WAIT_SECONDS, DEFAULT_POLL_WAIT_SECONDS, 1, 300);
        Set<String> unknown = new HashSet<>(p.keySet());
        unknown.removeAll(KNOWN);
        unknownParameters = Collections.unmodifiableSet(unknown);
    }

    /**
     * @param parameters as cassandra.yaml gives them; {@code null} means none
     * @throws IllegalArgumentException naming the parameter and the offending value
     */
    static ShimSettings from(Map<String, String> parameters)
    {
        return new ShimSettings(parameters == null ? Collections.<String, String>emptyMap() : parameters);
    }

    private static String value(Map<String, String> p, String name, String fallback)
    {
        String v = p.get(name);
        return v == null || v.trim().isEmpty() ? fallback : v.trim();
    }

    private static URL parseUrl(String text)
    {
        for (int i = 0; i < text.length(); i++)
            // The URL goes into the request line as it is: a space or control character would
            // break (or smuggle into) it.
            if (text.charAt(i) <= ' ' || text.charAt(i) > '~')
                throw new IllegalArgumentException(URL_PARAM + ": a space, control or non-ASCII character in '" + text + "'");
        try
        {
            URL url = new URL(text);
            String scheme = url.getProtocol().toLowerCase(Locale.ROOT);
            if (!scheme.equals("http") && !scheme.equals("https"))
                throw new IllegalArgumentException(URL_PARAM + ": only http and https are supported, got '" + text + "'");
            if (url.getHost() == null || url.getHost().isEmpty())
                throw new IllegalArgumentException(URL_PARAM + ": no host in '" + text + "'");
            return url;
        }
        catch (MalformedURLException e)
        {
            throw new IllegalArgumentException(URL_PARAM + ": not a URL: '" + text + "' (" + e.getMessage() + ")");
        }
    }

    private static long parseLong(Map<String, String> p, String name, long fallback, long min, long max)
    {
        String text = value(p, name, null);
        if (text == null)
            return fallback;
        long v;
        try
        {
            v = Long.parseLong(text);
        }
        catch (NumberFormatException e)
        {
            throw new IllegalArgumentException(name + ": not a whole number: '" + text + "'");
        }
        if (v < min || v > max)
            throw new IllegalArgumentException(name + ": " + v + " is outside " + min + ".." + max);
        return v;
    }

    private static Boolean parseBoolean(String text)
    {
        if (text.isEmpty())
            return null;
        // Strict: "yes"/"1" are errors rather than a silent false, as Boolean.parseBoolean would give.
        if (text.equalsIgnoreCase("true"))
            return Boolean.TRUE;
        if (text.equalsIgnoreCase("false"))
            return Boolean.FALSE;
        throw new IllegalArgumentException(LIVE_RELOAD + ": expected true or false, got '" + text + "'");
    }

    private static Path parsePath(String text)
    {
        if (text.isEmpty())
            return null;
        try
        {
            return Paths.get(text);
        }
        catch (InvalidPathException e)
        {
            throw new IllegalArgumentException(CACHE_FILE + ": not a valid path: '" + text + "'");
        }
    }
}
