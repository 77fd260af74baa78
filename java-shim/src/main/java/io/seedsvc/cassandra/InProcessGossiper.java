package io.seedsvc.cassandra;

import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.MalformedObjectNameException;
import javax.management.ObjectName;

/**
 * Cassandra's Gossiper as seen through the JVM's own MBean server: no JMX port, no credentials,
 * no link-time dependency on Gossiper (whose class differs between versions).
 */
final class InProcessGossiper
{
    /** {@code org.apache.cassandra.gms.Gossiper.MBEAN_NAME}, unchanged from 3.11 to 5.0. */
    static final ObjectName GOSSIPER = name("org.apache.cassandra.net:type=Gossiper");
    /** {@code StorageService}'s MBean; exposes {@code isGossipRunning()} as attribute GossipRunning. */
    static final ObjectName STORAGE_SERVICE = name("org.apache.cassandra.db:type=StorageService");

    private final MBeanServer server;

    InProcessGossiper(MBeanServer server)
    {
        this.server = server;
    }

    /**
     * @return whether a reload can take effect now: the Gossiper MBean is registered and, if the
     *         StorageService MBean is there, it reports gossip running. When gossip is not running
     *         no reload is needed: {@code Gossiper.start()} rebuilds its seed set from getSeeds().
     */
    boolean isRunning()
    {
        if (!server.isRegistered(GOSSIPER))
            return false;
        if (!server.isRegistered(STORAGE_SERVICE))
            return true;
        try
        {
            return Boolean.TRUE.equals(server.getAttribute(STORAGE_SERVICE, "GossipRunning"));
        }
        catch (JMException e)
        {
            return true; // attribute missing in some future version: let the reload decide
        }
    }

    /**
     * Invokes {@code GossiperMBean.reloadSeeds()}, which calls back into getSeeds() and replaces
     * Gossiper's seed set (Cassandra 4.0+).
     *
     * @throws JMException if the operation fails, or returns {@code null} - Cassandra's way of saying
     *                     the seed provider threw
     */
    void reloadSeeds() throws JMException
    {
        Object result = server.invoke(GOSSIPER, "reloadSeeds", new Object[0], new String[0]);
        if (result == null)
            throw new JMException("reloadSeeds returned null: Gossiper could not read the seed list");
    }

    private static ObjectName name(String text)
    {
        try
        {
            return new ObjectName(text);
        }
        catch (MalformedObjectNameException e)
        {
            throw new AssertionError(e);
        }
    }
}
