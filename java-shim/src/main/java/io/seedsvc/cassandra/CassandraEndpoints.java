package io.seedsvc.cassandra;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The element type of {@code SeedProvider.getSeeds()} in the running Cassandra, decided once.
 *
 * <ul>
 *   <li>Cassandra 3.11: {@code List<java.net.InetAddress>}; seeds have no port of their own.</li>
 *   <li>Cassandra 4.0-5.0: {@code List<org.apache.cassandra.locator.InetAddressAndPort>}. That
 *       class changed shape in 4.1 (it became an {@code InetSocketAddress}), so the shim never
 *       links against it: it calls the static factory
 *       {@code getByAddressOverrideDefaults(InetAddress, Integer)}, present with the same
 *       signature in 4.0, 4.1 and 5.0, by reflection. A {@code null} port there means
 *       Cassandra's configured storage_port.</li>
 * </ul>
 *
 * Generics are erased, so one {@code List getSeeds()} method satisfies both interfaces as long as
 * the list holds the right element type - which is this class's job.
 */
abstract class CassandraEndpoints
{
    static final String INET_ADDRESS_AND_PORT = "org.apache.cassandra.locator.InetAddressAndPort";

    /**
     * @param loader the class loader that loaded Cassandra's {@code SeedProvider} (normally the
     *               shim's own)
     * @throws IllegalStateException if InetAddressAndPort exists but lacks the factory (a
     *                               Cassandra this shim does not know)
     */
    static CassandraEndpoints detect(ClassLoader loader)
    {
        Class<?> type;
        try
        {
            // initialize=false: the factory call below initialises it when first needed.
            type = Class.forName(INET_ADDRESS_AND_PORT, false, loader);
        }
        catch (ClassNotFoundException e)
        {
            return new PlainAddresses();
        }
        try
        {
            return new AddressesAndPorts(type.getMethod("getByAddressOverrideDefaults", InetAddress.class, Integer.class));
        }
        catch (NoSuchMethodException e)
        {
            throw new IllegalStateException(INET_ADDRESS_AND_PORT + ".getByAddressOverrideDefaults(InetAddress, Integer) "
                                            + "not found: unsupported Cassandra version", e);
        }
    }

    /** @return an unmodifiable list of the running Cassandra's seed type, same order */
    final List<Object> toEndpoints(List<ResolvedSeed> seeds)
    {
        List<Object> out = new ArrayList<>(seeds.size());
        for (ResolvedSeed seed : seeds)
            out.add(toEndpoint(seed.address, seed.port));
        return Collections.unmodifiableList(out);
    }

    abstract Object toEndpoint(InetAddress address, Integer port);

    /** Whether GossiperMBean.reloadSeeds exists (added in Cassandra 4.0, CASSANDRA-14190). */
    abstract boolean supportsLiveReload();

    /** For log lines. */
    abstract String describe();

    /** An address with the optional port of its entry; what a {@link SeedEntry} resolves to. */
    static final class ResolvedSeed
    {
        final InetAddress address;
        final Integer port;

        ResolvedSeed(InetAddress address, Integer port)
        {
            this.address = address;
            this.port = port;
        }
    }

    /** Cassandra 3.11. */
    private static final class PlainAddresses extends CassandraEndpoints
    {
        private volatile boolean portWarningLogged;

        @Override
        Object toEndpoint(InetAddress address, Integer port)
        {
            // 3.11 has one storage_port for the whole cluster; a per-seed port cannot be honoured.
            if (port != null && !portWarningLogged)
            {
                portWarningLogged = true;
                SidecarSeedProvider.logger.warn("Cassandra 3.11 seeds carry no port; ignoring ports such as {}:{}",
                                                address.getHostAddress(), port);
            }
            return address;
        }

        @Override
        boolean supportsLiveReload()
        {
            return false;
        }

        @Override
        String describe()
        {
            return "List<InetAddress> (Cassandra 3.x)";
        }
    }

    /** Cassandra 4.0 and later. */
    private static final class AddressesAndPorts extends CassandraEndpoints
    {
        private final Method factory;

        AddressesAndPorts(Method factory)
        {
            this.factory = factory;
        }

        @Override
        Object toEndpoint(InetAddress address, Integer port)
        {
            try
            {
                return factory.invoke(null, address, port);
            }
            catch (IllegalAccessException e)
            {
                throw new IllegalStateException("cannot call " + factory, e);
            }
            catch (InvocationTargetException e)
            {
                Throwable cause = e.getCause();
                throw cause instanceof RuntimeException ? (RuntimeException) cause
                                                        : new IllegalStateException("cannot call " + factory, cause);
            }
        }

        @Override
        boolean supportsLiveReload()
        {
            return true;
        }

        @Override
        String describe()
        {
            return "List<InetAddressAndPort> (Cassandra 4.0+)";
        }
    }
}
