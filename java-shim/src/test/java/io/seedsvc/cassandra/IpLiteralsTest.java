package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class IpLiteralsTest
{
    @ParameterizedTest
    @CsvSource({
        "10.0.0.1, 10.0.0.1",
        "0.0.0.0, 0.0.0.0",
        "255.255.255.255, 255.255.255.255",
        "192.168.100.200, 192.168.100.200",
    })
    void acceptsDottedQuads(String text, String expected) throws Exception
    {
        InetAddress address = IpLiterals.parse(text);
        assertNotNull(address, text);
        assertEquals(Inet4Address.class, address.getClass());
        assertEquals(expected, address.getHostAddress());
    }

    @ParameterizedTest
    @CsvSource({
        "::, 0:0:0:0:0:0:0:0",
        "::1, 0:0:0:0:0:0:0:1",
        "fd00::1, fd00:0:0:0:0:0:0:1",
        "FD00::A:1, fd00:0:0:0:0:0:a:1",
        "1:2:3:4:5:6:7:8, 1:2:3:4:5:6:7:8",
        "1::, 1:0:0:0:0:0:0:0",
        "2001:db8::ff00:42:8329, 2001:db8:0:0:0:ff00:42:8329",
        "::10.0.0.1, 0:0:0:0:0:0:a00:1",
        "64:ff9b::192.0.2.33, 64:ff9b:0:0:0:0:c000:221",
        "1:2:3:4:5:6:1.2.3.4, 1:2:3:4:5:6:102:304",
    })
    void acceptsIpv6Forms(String text, String expected)
    {
        InetAddress address = IpLiterals.parse(text);
        assertNotNull(address, text);
        assertEquals(Inet6Address.class, address.getClass());
        assertEquals(expected, address.getHostAddress());
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "", "10", "10.1", "10.0.1", "10.0.0.1.", "10.0.0.256", "010.0.0.1", "10.0.0.01", "1e.0.0.1",
        "10.0.0.-1", "+10.0.0.1", " 10.0.0.1", "10..0.1", "0x0a.0.0.1", "localhost", "١٠.0.0.1",
        ":", ":::", "1:::2", "1::2::3", ":1", "1:", "12345::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7::8", "fe80::1%eth0", "g::1", "::1.2.3", "1.2.3.4::", "::1.2.3.4:5",
        "1:2:3:4:5:6:7:1.2.3.4", "[::1]", "::ffff:256.0.0.1",
    })
    void rejectsEverythingElse(String text)
    {
        assertNull(IpLiterals.parse(text), text);
    }
}
