package io.seedsvc.cassandra;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The element type of {@code SeedProvider.getSeeds()} in the running Cassandra, and whether it
 * can reload seeds at run time; decided once.
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
    static final String GOSSIPER_MBEAN = "org.apache.cassandra.gms.GossiperMBean";

    private final boolean liveReload;

    CassandraEndpoints(boolean liveReload)
    {
        this.liveReload = liveReload;
    }

    /**
     * Reads the element type from the running Cassandra's own {@code SeedProvider.getSeeds()}
     * signature. Class presence is not enough: late 3.11 releases (3.11.19 at least) also contain
     * an {@code InetAddressAndPort} class while their SeedProvider still returns
     * {@code List<InetAddress>}.
     *
     * @param seedProvider Cassandra's {@code SeedProvider} interface as linked by the shim
     * @throws IllegalStateException for a signature this shim does not know
     */
    static CassandraEndpoints detect(Class<?> seedProvider)
    {
        Type element;
        try
        {
            Type returned = seedProvider.getMethod("getSeeds").getGenericReturnType();
            if (!(returned instanceof ParameterizedType))
                throw new IllegalStateException("SeedProvider.getSeeds() returns " + returned + ", expected List<...>");
            element = ((ParameterizedType) returned).getActualTypeArguments()[0];
        }
        catch (NoSuchMethodException e)
        {
            throw new IllegalStateException("SeedProvider has no getSeeds(): unsupported Cassandra version", e);
        }
        boolean reloadable = hasReloadSeeds(seedProvider.getClassLoader());
        if (element == InetAddress.class)
            return new PlainAddresses(reloadable);
        if (element instanceof Class && ((Class<?>) element).getName().equals(INET_ADDRESS_AND_PORT))
        {
            try
            {
                return new AddressesAndPorts(((Class<?>) element).getMethod("getByAddressOverrideDefaults",
                                                                          InetAddress.class, Integer.class),
                                             reloadable);
            }
            catch (NoSuchMethodException e)
            {
                throw new IllegalStateException(INET_ADDRESS_AND_PORT + ".getByAddressOverrideDefaults(InetAddress, Integer) "
                                                + "not found: unsupported Cassandra version", e);
            }
        }
        throw new IllegalStateException("SeedProvider.getSeeds() returns List<" + element + ">: unsupported Cassandra version");
    }

    /** GossiperMBean.reloadSeeds() exists from Cassandra 4.0 (CASSANDRA-14190), not in 3.11. */
    private static boolean hasReloadSeeds(ClassLoader loader)
    {
        try
        {
            Class.forName(GOSSIPER_MBEAN, false, loader).getMethod("reloadSeeds");
            return true;
        }
        catch (ClassNotFoundException | NoSuchMethodException | LinkageError e)
        {
            return false;
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

    /** Whether GossiperMBean.reloadSeeds exists, so a running node can take new seeds. */
    final boolean supportsLiveReload()
    {
        return liveReload;
    }

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

        PlainAddresses(boolean liveReload)
        {
            super(liveReload);
        }

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
        String describe()
        {
            return "List<InetAddress> (Cassandra 3.x)" + (supportsLiveReload() ? "" : ", no reloadSeeds");
        }
    }

    /** Cassandra 4.0 and later. */
    private static final class AddressesAndPorts extends CassandraEndpoints
    {
        private final Method factory;

        AddressesAndPorts(Method factory, boolean liveReload)
        {
            super(liveReload);
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
        String describe()
        {
            return "List<InetAddressAndPort> (Cassandra 4.0+)" + (supportsLiveReload() ? "" : ", no reloadSeeds");
        }
    }
}
