package io.seedsvc.cassandra;

import java.net.InetAddress;
import java.net.UnknownHostException;

/**
 * Strict IPv4/IPv6 literal parsing without any name-service lookup.
 *
 * <p>{@link InetAddress#getByName(String)} is deliberately not used: it accepts legacy forms such
 * as {@code 10.1} or {@code 010.0.0.1} (which other tools read as octal) and silently falls back to
 * a DNS lookup for anything it does not recognise, turning a typo into a wrong address or a
 * blocking lookup on Cassandra's main thread. Here anything that is not a canonical literal is
 * rejected.
 */
final class IpLiterals
{
    private IpLiterals()
    {
    }

    /**
     * @return the address, or {@code null} if {@code text} is not a strict dotted-quad IPv4
     *         literal or a strict IPv6 literal (RFC 4291 section 2.2 text forms, no zone id)
     */
    static InetAddress parse(String text)
    {
        byte[] bytes = text.indexOf(':') >= 0 ? ipv6Bytes(text) : ipv4Bytes(text);
        return bytes == null ? null : fromBytes(bytes);
    }

    /** @return the four bytes of a dotted-quad literal, or {@code null}. */
    static byte[] ipv4Bytes(String text)
    {
        String[] parts = text.split("\\.", -1);
        if (parts.length != 4)
            return null;
        byte[] out = new byte[4];
        for (int i = 0; i < 4; i++)
        {
            String part = parts[i];
            // Leading zeros are refused: "010" is 10 to Java but 8 to inet_aton.
            if (part.isEmpty() || part.length() > 3 || (part.length() > 1 && part.charAt(0) == '0'))
                return null;
            int value = 0;
            for (int j = 0; j < part.length(); j++)
            {
                char c = part.charAt(j);
                if (c < '0' || c > '9')
                    return null;
                value = value * 10 + (c - '0');
            }
            if (value > 255)
                return null;
            out[i] = (byte) value;
        }
        return out;
    }

    /** @return the sixteen bytes of an IPv6 literal (optionally ending in a dotted quad), or {@code null}. */
    static byte[] ipv6Bytes(String text)
    {
        if (text.isEmpty() || text.length() > 45) // 45 = longest textual form (with embedded IPv4)
            return null;
        int gap = text.indexOf("::");
        if (gap >= 0 && text.indexOf("::", gap + 1) >= 0)
            return null; // "::" may appear once
        String head = gap >= 0 ? text.substring(0, gap) : text;
        String tail = gap >= 0 ? text.substring(gap + 2) : "";

        int[] headGroups = groups(head, gap < 0);
        int[] tailGroups = groups(tail, true);
        if (headGroups == null || tailGroups == null)
            return null;
        // (groups() already refused a dotted quad anywhere but at the very end.)
        int count = headGroups.length + tailGroups.length;
        if (gap < 0 ? count != 8 : count > 7)
            return null;

        byte[] out = new byte[16];
        for (int i = 0; i < headGroups.length; i++)
            put(out, i, headGroups[i]);
        for (int i = 0; i < tailGroups.length; i++)
            put(out, 8 - tailGroups.length + i, tailGroups[i]);
        return out;
    }

    /**
     * Splits colon-separated hex groups; a final dotted quad counts as two groups when
     * {@code quadAllowedAtEnd}. An empty string is zero groups.
     */
    private static int[] groups(String text, boolean quadAllowedAtEnd)
    {
        if (text.isEmpty())
            return new int[0];
        String[] parts = text.split(":", -1);
        boolean quad = parts[parts.length - 1].indexOf('.') >= 0;
        if (quad && !quadAllowedAtEnd)
            return null;
        int[] out = new int[parts.length + (quad ? 1 : 0)];
        for (int i = 0; i < parts.length; i++)
        {
            String part = parts[i];
            if (quad && i == parts.length - 1)
            {
                byte[] v4 = ipv4Bytes(part);
                if (v4 == null)
                    return null;
                out[i] = ((v4[0] & 0xff) << 8) | (v4[1] & 0xff);
                out[i + 1] = ((v4[2] & 0xff) << 8) | (v4[3] & 0xff);
                continue;
            }
            if (part.isEmpty() || part.length() > 4)
                return null;
            int value = 0;
            for (int j = 0; j < part.length(); j++)
            {
                int digit = Character.digit(part.charAt(j), 16);
                // Character.digit also accepts non-ASCII digits; only ASCII hex is valid here.
                if (digit < 0 || part.charAt(j) > 'f')
                    return null;
                value = (value << 4) | digit;
            }
            out[i] = value;
        }
        return out;
    }

    /**
     * Whether {@code address} can be a peer at all. Unspecified ({@code 0.0.0.0}, {@code ::}) and
     * the rest of {@code 0.0.0.0/8} ("this network", RFC 1122 section 3.2.1.3), multicast
     * ({@code 224.0.0.0/4}, {@code ff00::/8}) and the limited broadcast {@code 255.255.255.255}
     * are refused. Loopback and link-local stay allowed (single-host clusters use them), and so
     * does the rest of {@code 240.0.0.0/4}, which some clouds hand out to pods.
     *
     * @return why it is not a unicast address, or {@code null} if it is one
     */
    static String notUnicast(InetAddress address)
    {
        if (address.isAnyLocalAddress())
            return "the unspecified address is not a peer";
        if (address.isMulticastAddress())
            return "a multicast address is not a peer";
        byte[] bytes = address.getAddress();
        if (bytes.length == 4 && bytes[0] == 0)
            return "0.0.0.0/8 means this network, not a peer";
        if (bytes.length == 4 && (bytes[0] & bytes[1] & bytes[2] & bytes[3]) == (byte) 0xff)
            return "the broadcast address is not a peer";
        return null;
    }

    private static void put(byte[] out, int group, int value)
    {
        out[2 * group] = (byte) (value >>> 8);
        out[2 * group + 1] = (byte) value;
    }

    private static InetAddress fromBytes(byte[] bytes)
    {
        try
        {
            // getByAddress(byte[]) never consults a name service.
            return InetAddress.getByAddress(bytes);
        }
        catch (UnknownHostException e)
        {
            throw new AssertionError("4 or 16 bytes are always accepted", e);
        }
    }
}
