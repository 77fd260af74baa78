package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/** Shared helpers: parameter maps, seed rendering, waiting, and a no-leftover-threads check. */
final class ProviderTesting
{
    private ProviderTesting()
    {
    }

    static Map<String, String> params(String... keyValues)
    {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i < keyValues.length; i += 2)
            out.put(keyValues[i], keyValues[i + 1]);
        return out;
    }

    /** Renders what getSeeds() returned via InetAddressAndPort.getHostAddressAndPort() (4.0 API). */
    static List<String> render(List<?> seeds)
    {
        List<String> out = new ArrayList<>();
        for (Object seed : seeds)
        {
            try
            {
                out.add((String) seed.getClass().getMethod("getHostAddressAndPort").invoke(seed));
            }
            catch (ReflectiveOperationException e)
            {
                throw new AssertionError("not an InetAddressAndPort: " + seed.getClass(), e);
            }
        }
        return out;
    }

    static void await(String what, long timeoutMs, BooleanSupplier condition) throws InterruptedException
    {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (!condition.getAsBoolean())
        {
            if (System.nanoTime() > deadline)
                fail("timed out after " + timeoutMs + " ms waiting for " + what);
            Thread.sleep(20);
        }
    }

    static boolean reloaderThreadAlive()
    {
        for (Thread t : Thread.getAllStackTraces().keySet())
            if (t.getName().equals(SeedReloader.THREAD_NAME) && t.isAlive())
                return true;
        return false;
    }

    /** Closes every provider and fails if a reloader thread survives it. */
    static void closeAll(List<SidecarSeedProvider> providers) throws InterruptedException
    {
        for (SidecarSeedProvider p : providers)
            p.close();
        for (SidecarSeedProvider p : providers)
            assertTrue(p.awaitClosed(10_000), "reloader thread did not stop");
        providers.clear();
        assertTrue(!reloaderThreadAlive(), "a reloader thread was left behind");
    }
}
