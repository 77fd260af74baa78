package io.seedsvc.cassandra;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.cassandra.exceptions.ConfigurationException;
import org.apache.cassandra.locator.SeedProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import io.seedsvc.cassandra.CassandraEndpoints.ResolvedSeed;

/**
 * A Cassandra {@link SeedProvider} that takes its seeds from the seedsvc sidecar
 * ({@code GET /seeds} on loopback), for Cassandra 3.11 and 4.0-5.0 from one jar.
 *
 * <p>Contract towards Cassandra:
 * <ul>
 *   <li>The constructor never throws: Cassandra reports a constructor exception as
 *       {@code "null\nFatal configuration error"} (the message of the reflective wrapper), so
 *       configuration errors are kept and thrown from the first {@link #getSeeds()}, which
 *       Cassandra calls right after construction in {@code DatabaseDescriptor.applySeedProvider()}.</li>
 *   <li>The first getSeeds() retries the sidecar for up to {@code startup_wait_ms}, then falls
 *       back to the cache file, then to the static {@code seeds}. With none of them it throws a
 *       {@link ConfigurationException} without stack trace whose one message says what was
 *       tried; Cassandra prints it and exits.</li>
 *   <li>Every later call returns a non-empty, unmodifiable list and never throws.</li>
 *   <li>On Cassandra 4.0+ (unless {@code live_reload: false}) a daemon thread long-polls the
 *       sidecar and, on change, calls the Gossiper MBean's {@code reloadSeeds} in-process; later
 *       calls then answer from memory without network I/O. On 3.11 (no reloadSeeds) each later
 *       call asks the sidecar once, within request_timeout_ms, and keeps the last list on failure.</li>
 * </ul>
 * Parameters are described in {@code docs/java-shim.md}.
 */
// "unchecked": the raw List getSeeds() implements List<InetAddressAndPort> getSeeds() of the
// 4.0 interface compiled against; javac reports that on the class, not the method.
@SuppressWarnings("unchecked")
public final class SidecarSeedProvider implements SeedProvider
{
    /** One logger for all of the shim, so operators configure a single name in logback.xml. */
    static final Logger logger = LoggerFactory.getLogger(SidecarSeedProvider.class);

    /** First retry delay at start-up; loopback answers arrive within milliseconds once up. */
    private static final long STARTUP_BACKOFF_INITIAL_MS = 100;
    /** Retry cap at start-up: notice a sidecar that just came up within two seconds. */
    private static final long STARTUP_BACKOFF_MAX_MS = 2_000;
    /** Reload loop backoff: quick first retry, then at most one warning-worthy try per 30 s. */
    private static final long RELOAD_BACKOFF_INITIAL_MS = 1_000;
    private static final long RELOAD_BACKOFF_MAX_MS = 30_000;
    /** A long-poll that comes back sooner than this with a list is followed by a pause. */
    private static final long MIN_POLL_INTERVAL_MS = 1_000;
    /**
     * Without live reload, after a failed fetch later getSeeds() calls skip the network for this
     * long: Cassandra may call getSeeds() in bursts and each call must not pay the timeouts again.
     */
    private static final long REFETCH_HOLD_OFF_MS = 10_000;

    private final String configError;       // non-null: thrown by the first getSeeds()
    private final ShimSettings settings;
    private final SeedFetcher fetcher;
    private final SeedCacheFile cache;      // null when no cache_file
    private final List<SeedEntry> staticSeeds;
    private final CassandraEndpoints endpoints;
    /** Malformed entries already logged: the same bad list is re-read on every retry and poll. */
    private final Set<String> reportedMalformed = Collections.newSetFromMap(new ConcurrentHashMap<String, Boolean>());
    private final SeedListParser.MalformedEntryListener malformed = (entry, reason) -> {
        if (reportedMalformed.size() < 1_000 && reportedMalformed.add(entry))
            logger.warn("Skipping malformed seed entry '{}': {}", entry, reason);
    };

    private final Object startupLock = new Object();
    private final Object stateLock = new Object();
    private volatile Known known;           // null until the first getSeeds() succeeded
    private volatile SeedReloader reloader;
    private long lastFailedFetchNanos;      // guarded by stateLock; 0 = none
    private volatile boolean hasFailedFetch;

    /** The constructor Cassandra calls, with {@code seed_provider.parameters} from cassandra.yaml. */
    public SidecarSeedProvider(Map<String, String> parameters)
    {
        this(parameters, null);
    }

    /**
     * The test seam: {@code fetcher} replaces the HTTP client ({@code null} = HTTP to the
     * {@code url} parameter).
     */
    SidecarSeedProvider(Map<String, String> parameters, SeedFetcher fetcher)
    {
        ShimSettings parsed = null;
        CassandraEndpoints types = null;
        List<SeedEntry> fixed = Collections.emptyList();
        String error = null;
        try
        {
            parsed = ShimSettings.from(parameters);
            // Parsed now so that malformed entries are logged at start, not at the first fallback.
            fixed = SeedListParser.parse(parsed.staticSeeds, true, malformed);
            if (fixed.isEmpty() && !parsed.staticSeeds.isEmpty())
                throw new IllegalArgumentException(ShimSettings.SEEDS + ": no valid entry in '" + parsed.staticSeeds + "'");
        }
        catch (RuntimeException e)
        {
            error = "invalid seed_provider parameters: " + e.getMessage();
        }
        try
        {
            types = CassandraEndpoints.detect(SeedProvider.class);
        }
        catch (RuntimeException e)
        {
            error = error != null ? error : e.getMessage();
        }
        this.configError = error;
        this.settings = parsed;
        this.staticSeeds = fixed;
        this.endpoints = types;
        this.fetcher = parsed == null ? null
                     : fetcher != null ? fetcher
                     : new HttpSeedFetcher(parsed.url, parsed.connectTimeoutMs, parsed.readTimeoutMs,
                                           parsed.requestTimeoutMs);
        this.cache = parsed == null || parsed.cacheFile == null ? null : new SeedCacheFile(parsed.cacheFile);
        if (parsed != null && !parsed.unknownParameters.isEmpty())
            logger.warn("Ignoring unknown seed_provider parameters {}", parsed.unknownParameters);
    }

    /**
     * @return a non-empty unmodifiable list of {@code InetAddress} (Cassandra 3.11) or
     *         {@code InetAddressAndPort} (4.0+); raw because one method serves both interfaces
     * @throws ConfigurationException only from the first call, when the configuration is invalid
     *                                or no source gave a seed
     */
    @Override
    @SuppressWarnings("rawtypes")
    public List getSeeds()
    {
        Known current = known;
        if (current == null)
            return firstSeeds().endpoints;
        try
        {
            return refresh(current).endpoints;
        }
        catch (RuntimeException e)
        {
            // Never throw into gossip once running: the last list is still the best answer.
            logger.error("Unexpected error while refreshing seeds; keeping {}", current.entries, e);
            return current.endpoints;
        }
    }

    /**
     * Stops the live-reload thread, if any, aborting its long-poll, and stops asking the sidecar;
     * getSeeds() keeps answering with the last list. Cassandra never calls this; tests and
     * embedders do.
     */
    public void close()
    {
        SeedReloader r = reloader;
        if (r != null)
            r.close();
        if (fetcher != null)
            fetcher.close();
    }

    /** For tests: waits for the live-reload thread, if any, to end after {@link #close()}. */
    boolean awaitClosed(long timeoutMs) throws InterruptedException
    {
        SeedReloader r = reloader;
        return r == null || r.awaitTermination(timeoutMs);
    }

    private Known firstSeeds()
    {
        synchronized (startupLock)
        {
            if (known != null)
                return known;
            if (configError != null)
                throw new ConfigurationException("seedsvc SidecarSeedProvider: " + configError, false);

            StartupAttempts attempts = new StartupAttempts();
            Known first = waitForSidecar(attempts);
            if (first == null)
                first = fallback("the sidecar gave no list", attempts.describe(settings.startupWaitMs));
            if (first == null)
                throw new ConfigurationException(startupFailure(attempts), false);
            known = first;
            logger.info("Using seeds {} from {} ({})", first.entries, first.source, endpoints.describe());
            startReloaderIfEnabled(first.generation);
            return first;
        }
    }

    /** Retries the sidecar until it gives a list or {@code startup_wait_ms} has passed. */
    private Known waitForSidecar(StartupAttempts attempts)
    {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(settings.startupWaitMs);
        Backoff backoff = new Backoff(STARTUP_BACKOFF_INITIAL_MS, STARTUP_BACKOFF_MAX_MS);
        while (true)
        {
            attempts.count++;
            Long retryAfter = null;
            try
            {
                SidecarAnswer answer = fetcher.fetch(null, 0);
                List<SeedEntry> seeds = answer.seeds(malformed);
                if (!seeds.isEmpty())
                    return fromSidecar(seeds, answer.generation);
                attempts.last = answer.summary();
                retryAfter = answer.retryAfterSeconds;
            }
            catch (IOException | RuntimeException e)
            {
                attempts.last = e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            long remainingMs = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (remainingMs <= 0)
                return null;
            long delayMs = backoff.next();
            if (retryAfter != null)
                delayMs = Math.min(Math.max(delayMs, TimeUnit.SECONDS.toMillis(retryAfter)), STARTUP_BACKOFF_MAX_MS);
            if (attempts.count == 1)
                logger.info("Waiting up to {} ms for seeds from {} ({})", settings.startupWaitMs, fetcher.describe(),
                            attempts.last);
            try
            {
                TimeUnit.MILLISECONDS.sleep(Math.min(delayMs, remainingMs));
            }
            catch (InterruptedException e)
            {
                Thread.currentThread().interrupt();
                attempts.last = "interrupted";
                return null;
            }
        }
    }

    /** Later calls: from memory when the reloader keeps it fresh, else one short sidecar request. */
    private Known refresh(Known current)
    {
        if (reloader != null)
            return current;
        synchronized (stateLock)
        {
            if (hasFailedFetch && System.nanoTime() - lastFailedFetchNanos < TimeUnit.MILLISECONDS.toNanos(REFETCH_HOLD_OFF_MS))
                return known;
        }
        String failure;
        try
        {
            SidecarAnswer answer = fetcher.fetch(null, 0);
            List<SeedEntry> seeds = answer.seeds(malformed);
            if (!seeds.isEmpty())
            {
                offerFromSidecar(seeds, answer.generation);
                return known;
            }
            failure = answer.summary();
        }
        catch (IOException e)
        {
            failure = e.getClass().getSimpleName() + ": " + e.getMessage();
        }
        synchronized (stateLock)
        {
            if (!hasFailedFetch)
                logger.warn("Sidecar {} gave no seeds ({}); keeping {} from {}", fetcher.describe(), failure,
                            known.entries, known.source);
            hasFailedFetch = true;
            lastFailedFetchNanos = System.nanoTime();
            return known;
        }
    }

    /**
     * Stores a list from the sidecar as the current one and in the cache file.
     *
     * @return whether it differs from the list served so far
     */
    private boolean offerFromSidecar(List<SeedEntry> seeds, Long generation)
    {
        synchronized (stateLock)
        {
            if (hasFailedFetch)
                logger.info("Sidecar {} answers again", fetcher.describe());
            hasFailedFetch = false;
            Known previous = known;
            if (previous != null && previous.entries.equals(seeds))
            {
                if (previous.source != Source.SIDECAR)
                {
                    // Same list, now confirmed by the sidecar: refresh the cache, no reload needed.
                    writeCache(seeds);
                    known = new Known(previous.entries, previous.endpoints, Source.SIDECAR, generation);
                }
                return false;
            }
            known = fromSidecar(seeds, generation);
            if (previous != null)
                logger.info("Seeds changed from {} to {}", previous.entries, seeds);
            return true;
        }
    }

    private Known fromSidecar(List<SeedEntry> seeds, Long generation)
    {
        List<ResolvedSeed> resolved = new ArrayList<>(seeds.size());
        for (SeedEntry seed : seeds)
            resolved.add(new ResolvedSeed(literalAddress(seed), seed.port()));
        writeCache(seeds);
        return new Known(seeds, endpoints.toEndpoints(resolved), Source.SIDECAR, generation);
    }

    /** Cache file, then static seeds. @return null when neither gives an address */
    private Known fallback(String why, String sidecarDetail)
    {
        if (cache != null)
        {
            try
            {
                List<SeedEntry> cached = cache.read(malformed);
                if (!cached.isEmpty())
                {
                    logger.warn("{} ({}); using the cached list from {}", why, sidecarDetail, cache.path());
                    return resolve(cached, Source.CACHE_FILE);
                }
            }
            catch (IOException e)
            {
                logger.warn("Cannot read seed cache {}: {}", cache.path(), e.toString());
            }
        }
        Known fromStatic = resolve(staticSeeds, Source.STATIC);
        if (fromStatic != null)
            logger.warn("{} ({}); using the static seeds {}", why, sidecarDetail, fromStatic.entries);
        return fromStatic;
    }

    /** Resolves host names (static seeds only); unresolvable ones are skipped with a warning. */
    private Known resolve(List<SeedEntry> seeds, Source source)
    {
        List<SeedEntry> kept = new ArrayList<>(seeds.size());
        List<ResolvedSeed> resolved = new ArrayList<>(seeds.size());
        for (SeedEntry seed : seeds)
        {
            try
            {
                InetAddress address = seed.resolve();
                // Literals were checked when parsed; a host name can still resolve to 0.0.0.0.
                String notUnicast = IpLiterals.notUnicast(address);
                if (notUnicast != null)
                {
                    logger.warn("Seed {} from {} resolves to {}: {}; skipping it", seed, source,
                                address.getHostAddress(), notUnicast);
                    continue;
                }
                resolved.add(new ResolvedSeed(address, seed.port()));
                kept.add(seed);
            }
            catch (UnknownHostException e)
            {
                // As SimpleSeedProvider does: one bad name must not stop the node.
                logger.warn("Seed {} from {} does not resolve; skipping it", seed, source);
            }
        }
        if (kept.isEmpty())
            return null;
        return new Known(Collections.unmodifiableList(kept), endpoints.toEndpoints(resolved), source, null);
    }

    private void writeCache(List<SeedEntry> seeds)
    {
        if (cache == null)
            return;
        try
        {
            cache.write(seeds);
        }
        catch (IOException | RuntimeException e)
        {
            // The cache only helps a later start; failing to write it must not fail this one.
            logger.warn("Cannot write seed cache {}: {}", cache.path(), e.toString());
        }
    }

    private void startReloaderIfEnabled(Long generation)
    {
        boolean supported = endpoints.supportsLiveReload();
        if (Boolean.TRUE.equals(settings.liveReload) && !supported)
            logger.warn("live_reload is not available on this Cassandra version (no Gossiper.reloadSeeds); "
                        + "seeds are re-read only when Cassandra asks");
        if (!supported || Boolean.FALSE.equals(settings.liveReload))
            return;
        SeedReloader r = new SeedReloader(fetcher, seeds -> offerFromSidecar(seeds, null),
                                          new InProcessGossiper(ManagementFactory.getPlatformMBeanServer()),
                                          malformed, settings.pollWaitSeconds, generation,
                                          new Backoff(RELOAD_BACKOFF_INITIAL_MS, RELOAD_BACKOFF_MAX_MS),
                                          MIN_POLL_INTERVAL_MS);
        reloader = r;
        r.start();
    }

    private String startupFailure(StartupAttempts attempts)
    {
        return "seedsvc SidecarSeedProvider found no seeds, so Cassandra cannot start. Tried: "
               + "sidecar " + fetcher.describe() + " - " + attempts.describe(settings.startupWaitMs) + "; "
               + "cache_file " + (cache == null ? "not set" : cache.path() + " - no usable entry") + "; "
               + "static seeds " + (settings.staticSeeds.isEmpty() ? "not set" : "'" + settings.staticSeeds + "' - no usable entry")
               + ". Start the seedsvc sidecar, or set the 'seeds' parameter of seed_provider as a fallback.";
    }

    private static InetAddress literalAddress(SeedEntry seed)
    {
        try
        {
            return seed.resolve(); // sidecar entries are IP literals: no lookup happens
        }
        catch (UnknownHostException e)
        {
            throw new AssertionError("IP literal did not resolve: " + seed, e);
        }
    }

    private enum Source
    {
        SIDECAR("the sidecar"), CACHE_FILE("the cache file"), STATIC("the static seeds parameter");

        private final String text;

        Source(String text)
        {
            this.text = text;
        }

        @Override
        public String toString()
        {
            return text;
        }
    }

    /** What getSeeds() serves: the entries, the same as Cassandra objects, and where they came from. */
    private static final class Known
    {
        final List<SeedEntry> entries;
        final List<Object> endpoints;
        final Source source;
        final Long generation;

        Known(List<SeedEntry> entries, List<Object> endpoints, Source source, Long generation)
        {
            this.entries = entries;
            this.endpoints = endpoints;
            this.source = source;
            this.generation = generation;
        }
    }

    /** Bookkeeping of the start-up wait, for the failure message. */
    private static final class StartupAttempts
    {
        int count;
        String last = "not tried";

        String describe(long waitMs)
        {
            return count + (count == 1 ? " attempt" : " attempts") + " in " + waitMs + " ms, last: " + last;
        }
    }
}
