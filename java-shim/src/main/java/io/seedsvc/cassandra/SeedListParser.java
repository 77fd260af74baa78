package io.seedsvc.cassandra;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Strict parser for seed lists in SimpleSeedProvider syntax: entries separated by commas (and,
 * leniently, whitespace or newlines), each {@code host} or {@code host:port}; an IPv6 address
 * with a port must be bracketed ({@code [::1]:7000}), one without a port may be bare.
 *
 * <p>A malformed entry is reported to the {@link MalformedEntryListener} and skipped - it is never
 * "repaired" into some other address. Host names are accepted only when the caller allows them
 * (the static {@code seeds} parameter); lists from the sidecar or the cache file must be IP
 * literals so that reading them never triggers a DNS lookup. Addresses that cannot be a peer
 * (unspecified, multicast, broadcast: {@link IpLiterals#notUnicast}) are malformed entries too. A
 * leading UTF-8 byte order mark is stripped. Pure: no I/O, no logging.
 */
final class SeedListParser
{
    /** Receives each entry that was skipped and why. */
    interface MalformedEntryListener
    {
        void malformed(String entry, String reason);
    }

    // Separators: the sidecar sends "a,b,c" but a trailing newline or ", " must not hurt.
    private static final Pattern SEPARATORS = Pattern.compile("[,\\s]+");
    // RFC 1123 label: letters, digits, hyphens; no leading or trailing hyphen; at most 63 chars.
    private static final Pattern LABEL = Pattern.compile("[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?");

    private static final String BYTE_ORDER_MARK = "\uFEFF";

    private SeedListParser()
    {
    }

    /**
     * @param text           the list; {@code null} or blank gives an empty list
     * @param allowHostnames whether DNS names are acceptable entries
     * @param listener       told about every skipped entry
     * @return the valid entries in their original order, duplicates removed; unmodifiable
     */
    static List<SeedEntry> parse(String text, boolean allowHostnames, MalformedEntryListener listener)
    {
        if (text == null)
            return Collections.emptyList();
        // A leading UTF-8 byte order mark (an editor's, or a proxy's) is not part of the first
        // entry; left in, it would make that entry malformed and drop it.
        String list = text.startsWith(BYTE_ORDER_MARK) ? text.substring(1) : text;
        if (list.trim().isEmpty())
            return Collections.emptyList();
        Set<SeedEntry> entries = new LinkedHashSet<>();
        for (String token : SEPARATORS.split(list.trim()))
        {
            if (token.isEmpty())
                continue;
            try
            {
                entries.add(parseEntry(token, allowHostnames));
            }
            catch (IllegalArgumentException e)
            {
                listener.malformed(token, e.getMessage());
            }
        }
        return Collections.unmodifiableList(new ArrayList<>(entries));
    }

    /**
     * @throws IllegalArgumentException with a short reason if {@code entry} is not acceptable
     */
    static SeedEntry parseEntry(String entry, boolean allowHostnames)
    {
        if (entry.startsWith("["))
        {
            int close = entry.indexOf(']');
            if (close < 0)
                throw new IllegalArgumentException("unclosed '['");
            String inside = entry.substring(1, close);
            if (inside.indexOf(':') < 0)
                throw new IllegalArgumentException("brackets are only for IPv6 addresses");
            InetAddress address = IpLiterals.parse(inside);
            if (address == null)
                throw new IllegalArgumentException("not a valid IPv6 address");
            String rest = entry.substring(close + 1);
            if (rest.isEmpty())
                return unicast(address, null);
            if (!rest.startsWith(":"))
                throw new IllegalArgumentException("unexpected text after ']'");
            return unicast(address, parsePort(rest.substring(1)));
        }

        int firstColon = entry.indexOf(':');
        if (firstColon >= 0 && entry.indexOf(':', firstColon + 1) >= 0)
        {
            // Two or more colons: a bare IPv6 address. "fd00::1:7000" is an address, not a port,
            // which is why a port needs brackets.
            InetAddress address = IpLiterals.parse(entry);
            if (address == null)
                throw new IllegalArgumentException("not a valid IPv6 address");
            return unicast(address, null);
        }

        String host = firstColon >= 0 ? entry.substring(0, firstColon) : entry;
        Integer port = firstColon >= 0 ? parsePort(entry.substring(firstColon + 1)) : null;
        InetAddress address = IpLiterals.parse(host);
        if (address != null)
            return unicast(address, port);
        if (looksNumeric(host))
            // "10.1", "010.0.0.1", "10.0.0.256": refuse rather than let a resolver guess.
            throw new IllegalArgumentException("not a valid IPv4 address");
        if (!isHostname(host))
            throw new IllegalArgumentException("neither an IP address nor a valid host name");
        if (!allowHostnames)
            throw new IllegalArgumentException("host names are not accepted here, only IP addresses");
        return SeedEntry.hostname(host.toLowerCase(Locale.ROOT), port);
    }

    private static SeedEntry unicast(InetAddress address, Integer port)
    {
        String problem = IpLiterals.notUnicast(address);
        if (problem != null)
            throw new IllegalArgumentException(problem);
        return SeedEntry.literal(address, port);
    }

    private static Integer parsePort(String text)
    {
        if (text.isEmpty() || text.length() > 5)
            throw new IllegalArgumentException("invalid port");
        int value = 0;
        for (int i = 0; i < text.length(); i++)
        {
            char c = text.charAt(i);
            if (c < '0' || c > '9')
                throw new IllegalArgumentException("invalid port");
            value = value * 10 + (c - '0');
        }
        if (value < 1 || value > 65535)
            throw new IllegalArgumentException("port out of range 1-65535");
        return value;
    }

    private static boolean looksNumeric(String host)
    {
        for (int i = 0; i < host.length(); i++)
        {
            char c = host.charAt(i);
            if ((c < '0' || c > '9') && c != '.')
                return false;
        }
        return true;
    }

    private static boolean isHostname(String host)
    {
        String name = host.endsWith(".") ? host.substring(0, host.length() - 1) : host;
        if (name.isEmpty() || name.length() > 253)
            return false;
        String[] labels = name.split("\\.", -1);
        for (String label : labels)
            if (!LABEL.matcher(label).matches())
                return false;
        // An all-numeric last label would be an IPv4-like typo, never a real top-level domain
        // (RFC 3696 section 2).
        return !looksNumeric(labels[labels.length - 1]);
    }
}
