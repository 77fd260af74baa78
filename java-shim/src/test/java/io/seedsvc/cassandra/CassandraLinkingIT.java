package io.seedsvc.cassandra;

import static io.seedsvc.cassandra.ProviderTesting.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import javax.management.MBeanServer;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Linking tests: the packaged shim jar, loaded next to the real cassandra-all jar of each
 * supported Cassandra line (plus the guava and slf4j-api that release ships) in an isolated class
 * loader whose parent is the platform loader - nothing from the build's own classpath (which has
 * cassandra-all 4.0 for compiling) can leak in. The shim is used only through that loader's
 * {@code SeedProvider} interface, as Cassandra does.
 *
 * <p>The jars are copied to target/cassandra-linking/ by maven-dependency-plugin (see pom.xml).
 */
class CassandraLinkingIT
{
    private static final String SHIM = "io.seedsvc.cassandra.SidecarSeedProvider";

    private final List<Object> providers = new ArrayList<>();
    private final List<URLClassLoader> loaders = new ArrayList<>();
    private FakeSidecar sidecar;

    static Stream<String> versions()
    {
        String versions = System.getProperty("seedsvc.linking.versions");
        assertNotNull(versions, "run through failsafe (mvn verify), which sets seedsvc.linking.versions");
        return Arrays.stream(versions.split(","));
    }

    @AfterEach
    void tearDown() throws Exception
    {
        for (Object provider : providers)
            provider.getClass().getMethod("close").invoke(provider);
        await("reloader threads to stop", 30_000, () -> !ProviderTesting.reloaderThreadAlive());
        if (sidecar != null)
            sidecar.close();
        for (URLClassLoader loader : loaders)
            loader.close();
        MBeanServer mbeans = ManagementFactory.getPlatformMBeanServer();
        if (mbeans.isRegistered(InProcessGossiper.GOSSIPER))
            mbeans.unregisterMBean(InProcessGossiper.GOSSIPER);
    }

    @ParameterizedTest(name = "Cassandra {0}")
    @MethodSource("versions")
    void getSeedsReturnsTheElementTypeOfThisCassandraVersion(String version) throws Exception
    {
        sidecar = new FakeSidecar().serve("10.0.0.1,fd00::2,[::1]:7001,10.0.0.4:7002");
        ClassLoader loader = cassandraLoader(version);
        Object provider = newProvider(loader, params("url", sidecar.url(), "startup_wait_ms", "5000"));

        List<?> seeds = getSeeds(loader, provider);
        assertEquals(4, seeds.size());
        assertThrows(UnsupportedOperationException.class, () -> seeds.remove(0), "unmodifiable");
        if (isCassandra3(version))
        {
            // List<InetAddress>; 3.11 has no per-seed port, so ports are dropped. (3.11.19's jar
            // does contain an InetAddressAndPort class; its SeedProvider does not use it.)
            assertSame(Inet4Address.class, seeds.get(0).getClass());
            assertSame(Inet6Address.class, seeds.get(1).getClass());
            assertEquals(Arrays.asList(InetAddress.getByName("10.0.0.1"), InetAddress.getByName("fd00::2"),
                                       InetAddress.getByName("::1"), InetAddress.getByName("10.0.0.4")),
                         seeds);
            assertFalse(ProviderTesting.reloaderThreadAlive(), "no live reload on 3.11 (no Gossiper.reloadSeeds)");
        }
        else
        {
            Class<?> expected = loader.loadClass(CassandraEndpoints.INET_ADDRESS_AND_PORT);
            for (Object seed : seeds)
                assertSame(expected, seed.getClass(), "InetAddressAndPort of this Cassandra's loader");
            assertEquals(Arrays.asList("10.0.0.1:7000", "[fd00:0:0:0:0:0:0:2]:7000", "[0:0:0:0:0:0:0:1]:7001", "10.0.0.4:7002"),
                         render(seeds));
            assertTrue(ProviderTesting.reloaderThreadAlive(), "live reload on by default on 4.0+");
        }
    }

    @ParameterizedTest(name = "Cassandra {0}")
    @MethodSource("versions")
    void staticFallbackWithHostNamesWorks(String version) throws Exception
    {
        ClassLoader loader = cassandraLoader(version);
        Object provider = newProvider(loader, params("url", "http://127.0.0.1:" + Ports.closedLoopbackPort() + "/seeds",
                                                     "startup_wait_ms", "0", "seeds", "localhost,10.0.0.9"));
        List<?> seeds = getSeeds(loader, provider);
        assertEquals(2, seeds.size());
        String last = isCassandra3(version) ? ((InetAddress) seeds.get(1)).getHostAddress() : render(seeds).get(1);
        assertEquals(isCassandra3(version) ? "10.0.0.9" : "10.0.0.9:7000", last);
    }

    @ParameterizedTest(name = "Cassandra {0}")
    @MethodSource("versions")
    void startupFailureIsThisCassandrasConfigurationException(String version) throws Exception
    {
        ClassLoader loader = cassandraLoader(version);
        String url = "http://127.0.0.1:" + Ports.closedLoopbackPort() + "/seeds";
        Object provider = newProvider(loader, params("url", url, "startup_wait_ms", "200"));
        InvocationTargetException e = assertThrows(InvocationTargetException.class,
                                                   () -> seedProviderInterface(loader).getMethod("getSeeds").invoke(provider));
        Throwable cause = e.getCause();
        assertSame(loader.loadClass("org.apache.cassandra.exceptions.ConfigurationException"), cause.getClass());
        assertTrue(cause.getMessage().contains("sidecar " + url), cause.getMessage());
        assertEquals(Boolean.FALSE, cause.getClass().getField("logStackTrace").get(cause));
    }

    /** The lines with {@code Gossiper.reloadSeeds} (4.0+); failsafe errors if there are none. */
    static Stream<String> liveReloadVersions()
    {
        return versions().filter(version -> !isCassandra3(version));
    }

    /** The lines without it (3.11); failsafe errors if there are none. */
    static Stream<String> pollOnCallVersions()
    {
        return versions().filter(CassandraLinkingIT::isCassandra3);
    }

    @ParameterizedTest(name = "Cassandra {0}")
    @MethodSource("pollOnCallVersions")
    void withoutReloadSeedsEachLaterGetSeedsAsksTheSidecarForTheNewList(String version) throws Exception
    {
        // What 3.11 gets instead of live reload, through its own List<InetAddress> signature:
        // live_reload: true is refused with a warning (no thread), and every later getSeeds() -
        // which 3.11's Gossiper makes on its own schedule - asks the sidecar once.
        sidecar = new FakeSidecar().serve("10.0.0.1");
        ClassLoader loader = cassandraLoader(version);
        Object provider = newProvider(loader, params("url", sidecar.url(), "live_reload", "true"));
        assertEquals(Collections.singletonList(InetAddress.getByName("10.0.0.1")), getSeeds(loader, provider));
        assertFalse(ProviderTesting.reloaderThreadAlive(), "no reload thread without Gossiper.reloadSeeds");

        sidecar.serve("10.0.0.2,[fd00::3]:7003");
        List<?> seeds = getSeeds(loader, provider);
        assertEquals(Arrays.asList(InetAddress.getByName("10.0.0.2"), InetAddress.getByName("fd00::3")), seeds);
        assertSame(Inet6Address.class, seeds.get(1).getClass());
        assertEquals(2, sidecar.requests().size(), "one request per getSeeds(): " + sidecar.requests());
        assertFalse(sidecar.requests().stream().anyMatch(r -> r.contains("wait=")), "never a long-poll on 3.11");
    }

    @ParameterizedTest(name = "Cassandra {0}")
    @MethodSource("liveReloadVersions")
    void liveReloadCallsTheGossiperMBeanWithThisCassandrasTypes(String version) throws Exception
    {
        sidecar = new FakeSidecar().serve("10.0.0.1");
        ClassLoader loader = cassandraLoader(version);
        Object provider = newProvider(loader, params("url", sidecar.url(), "poll_wait_seconds", "1"));
        RecordingGossiper gossiper = new RecordingGossiper(() -> render(getSeeds(loader, provider)));
        ManagementFactory.getPlatformMBeanServer().registerMBean(gossiper, InProcessGossiper.GOSSIPER);
        getSeeds(loader, provider);

        sidecar.serve("10.0.0.2,[fd00::3]:7003");
        await("reloadSeeds", 30_000, () -> !gossiper.reloads.isEmpty());
        assertEquals(Arrays.asList("10.0.0.2:7000", "[fd00:0:0:0:0:0:0:3]:7003"), gossiper.reloads.get(0));
    }

    /** Seeds callback that may throw, for the test MBean. */
    interface SeedsCall
    {
        List<String> get() throws Exception;
    }

    public interface RecordingGossiperMBean
    {
        List<String> reloadSeeds();
    }

    public static final class RecordingGossiper implements RecordingGossiperMBean
    {
        final List<List<String>> reloads = new CopyOnWriteArrayList<>();
        private final SeedsCall seeds;

        RecordingGossiper(SeedsCall seeds)
        {
            this.seeds = seeds;
        }

        @Override
        public List<String> reloadSeeds()
        {
            try
            {
                List<String> current = seeds.get();
                reloads.add(current);
                return current;
            }
            catch (Exception e)
            {
                return null; // what Gossiper.reloadSeeds returns when the provider throws
            }
        }
    }

    private static boolean isCassandra3(String version)
    {
        return version.startsWith("3.");
    }

    private ClassLoader cassandraLoader(String version) throws IOException
    {
        File dir = new File(System.getProperty("seedsvc.linking.dir"), version);
        File[] jars = dir.listFiles((d, name) -> name.endsWith(".jar"));
        assertNotNull(jars, "missing " + dir);
        assertTrue(Arrays.stream(jars).anyMatch(j -> j.getName().startsWith("cassandra-all-" + version)), "no cassandra-all in " + dir);
        List<URL> urls = new ArrayList<>();
        urls.add(new File(System.getProperty("seedsvc.shim.jar")).toURI().toURL());
        for (File jar : jars)
            urls.add(jar.toURI().toURL());
        URLClassLoader loader = new URLClassLoader(urls.toArray(new URL[0]), ClassLoader.getPlatformClassLoader());
        loaders.add(loader);
        return loader;
    }

    private Object newProvider(ClassLoader loader, Map<String, String> params) throws Exception
    {
        Class<?> shim = loader.loadClass(SHIM);
        assertSame(loader, shim.getClassLoader(), "the shim must come from the packaged jar");
        Class<?> seedProvider = seedProviderInterface(loader);
        assertTrue(seedProvider.isAssignableFrom(shim), "implements this Cassandra's SeedProvider");
        Object provider = seedProvider.cast(shim.getConstructor(Map.class).newInstance(params));
        providers.add(provider);
        return provider;
    }

    private static Class<?> seedProviderInterface(ClassLoader loader) throws ClassNotFoundException
    {
        return loader.loadClass("org.apache.cassandra.locator.SeedProvider");
    }

    private static List<?> getSeeds(ClassLoader loader, Object provider) throws Exception
    {
        // Through the interface's method, exactly as Cassandra's call site links.
        Method getSeeds = seedProviderInterface(loader).getMethod("getSeeds");
        return (List<?>) getSeeds.invoke(provider);
    }

    private static List<String> render(List<?> seeds)
    {
        return Collections.unmodifiableList(seeds.stream().map(seed -> {
            try
            {
                return (String) seed.getClass().getMethod("getHostAddressAndPort").invoke(seed);
            }
            catch (ReflectiveOperationException e)
            {
                throw new AssertionError(e);
            }
        }).collect(Collectors.toList()));
    }

    private static Map<String, String> params(String... keyValues)
    {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i < keyValues.length; i += 2)
            out.put(keyValues[i], keyValues[i + 1]);
        return out;
    }
}
