package io.seedsvc.cassandra;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Objects;

/**
 * One parsed seed: an IP literal or (only from the static {@code seeds} parameter) a host name,
 * with an optional port. A missing port means "Cassandra's own storage_port", which is what
 * {@code InetAddressAndPort.getByAddressOverrideDefaults(address, null)} applies.
 *
 * <p>Immutable. Equality is by address (or host name) and port.
 */
final class SeedEntry
{
    private final InetAddress literal; // null for a host name
    private final String hostname;     // null for a literal
    private final Integer port;        // null = Cassandra's default storage port

    private SeedEntry(InetAddress literal, String hostname, Integer port)
    {
        this.literal = literal;
        this.hostname = hostname;
        this.port = port;
    }

    static SeedEntry literal(InetAddress address, Integer port)
    {
        return new SeedEntry(Objects.requireNonNull(address), null, port);
    }

    static SeedEntry hostname(String name, Integer port)
    {
        return new SeedEntry(null, Objects.requireNonNull(name), port);
    }

    boolean isLiteral()
    {
        return literal != null;
    }

    /** @return the port, or {@code null} for Cassandra's default storage port */
    Integer port()
    {
        return port;
    }

    /**
     * @return the address; for a literal without any lookup, for a host name through the JVM's
     *         resolver (which may block - host names are only accepted in the static fallback)
     */
    InetAddress resolve() throws UnknownHostException
    {
        return literal != null ? literal : InetAddress.getByName(hostname);
    }

    /**
     * The canonical text of this entry, in the syntax {@link SeedListParser} reads back:
     * {@code 10.0.0.1}, {@code 10.0.0.1:7000}, {@code fd00:0:0:0:0:0:0:1}, {@code [fd00:0:0:0:0:0:0:1]:7000},
     * {@code cassandra-0.example:7000}.
     */
    @Override
    public String toString()
    {
        String host = literal != null ? literal.getHostAddress() : hostname;
        if (port == null)
            return host;
        return literal instanceof Inet6Address ? "[" + host + "]:" + port : host + ":" + port;
    }

    @Override
    public boolean equals(Object o)
    {
        if (this == o)
            return true;
        if (!(o instanceof SeedEntry))
            return false;
        SeedEntry that = (SeedEntry) o;
        return Objects.equals(literal, that.literal)
               && Objects.equals(hostname, that.hostname)
               && Objects.equals(port, that.port);
    }

    @Override
    public int hashCode()
    {
        return Objects.hash(literal, hostname, port);
    }
}
