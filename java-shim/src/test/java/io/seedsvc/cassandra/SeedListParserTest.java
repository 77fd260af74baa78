package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class SeedListParserTest
{
    private final List<String> skipped = new ArrayList<>();

    private List<String> parse(String text, boolean allowHostnames)
    {
        return SeedListParser.parse(text, allowHostnames, (entry, reason) -> skipped.add(entry))
                             .stream().map(SeedEntry::toString).collect(Collectors.toList());
    }

    @Test
    void readsTheSidecarsCommaSeparatedBody()
    {
        assertEquals(Arrays.asList("10.0.0.1", "10.0.0.2", "10.0.0.3"), parse("10.0.0.1,10.0.0.2,10.0.0.3", false));
        assertTrue(skipped.isEmpty());
    }

    @Test
    void toleratesWhitespaceNewlinesAndEmptyItems()
    {
        assertEquals(Arrays.asList("10.0.0.1", "10.0.0.2", "10.0.0.3"),
                     parse("  10.0.0.1 ,\n10.0.0.2,,\r\n\t10.0.0.3,\n", false));
        assertTrue(skipped.isEmpty());
    }

    @Test
    void aLeadingByteOrderMarkIsStrippedNotMadePartOfTheFirstEntry()
    {
        assertEquals(Arrays.asList("10.0.0.1", "10.0.0.2"), parse("\uFEFF10.0.0.1,10.0.0.2\n", false));
        assertTrue(skipped.isEmpty(), skipped.toString());
        assertTrue(parse("\uFEFF", false).isEmpty());
    }

    @Test
    void aByteOrderMarkAnywhereElseIsAMalformedEntry()
    {
        assertEquals(Arrays.asList("10.0.0.1"), parse("10.0.0.1,\uFEFF10.0.0.2", false));
        assertEquals(Arrays.asList("\uFEFF10.0.0.2"), skipped);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "0.0.0.0            | the unspecified address",
        "0.0.0.0:7000       | the unspecified address",
        "::                 | the unspecified address",
        "[::]:7000          | the unspecified address",
        "0:0:0:0:0:0:0:0    | the unspecified address",
        "::ffff:0.0.0.0     | the unspecified address",
        "0.1.2.3            | 0.0.0.0/8 means this network",
        "224.0.0.1          | a multicast address",
        "239.255.255.250    | a multicast address",
        "224.0.0.1:7000     | a multicast address",
        "ff02::1            | a multicast address",
        "[ff05::2]:7000     | a multicast address",
        "::ffff:224.0.0.1   | a multicast address",
        "255.255.255.255    | the broadcast address",
    })
    void addressesThatCannotBeAPeerAreRefusedWithTheReason(String entry, String reason)
    {
        for (boolean allowHostnames : new boolean[]{ false, true })
        {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                                                      () -> SeedListParser.parseEntry(entry, allowHostnames));
            assertTrue(e.getMessage().startsWith(reason), entry + ": " + e.getMessage());
        }
        assertEquals(Arrays.asList("10.0.0.1"), parse("10.0.0.1," + entry, true));
        assertEquals(Arrays.asList(entry), skipped);
    }

    @ParameterizedTest
    @ValueSource(strings = { "127.0.0.1", "::1", "fe80::1", "169.254.1.1", "240.0.0.1", "100.64.0.1", "223.255.255.255" })
    void unicastAddressesOfEveryKindStayAccepted(String entry)
    {
        assertEquals(1, parse(entry, false).size(), entry);
        assertTrue(skipped.isEmpty(), skipped.toString());
    }

    @Test
    void blankOrNullIsEmpty()
    {
        assertTrue(parse(null, true).isEmpty());
        assertTrue(parse(" \n ", true).isEmpty());
        assertTrue(parse(",,,", true).isEmpty());
    }

    @Test
    void readsUnbracketedIpv6WithoutPortAndBracketedWithPort()
    {
        assertEquals(Arrays.asList("fd00:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]:7000", "fd00:0:0:0:0:0:0:2"),
                     parse("fd00::1,[::1]:7000,[fd00::2]", false));
    }

    @Test
    void readsIpv4WithPort()
    {
        assertEquals(Arrays.asList("10.0.0.1:7001", "10.0.0.2"), parse("10.0.0.1:7001,10.0.0.2", false));
    }

    @Test
    void anUnbracketedIpv6EndingInANumberIsAnAddressNotAPort()
    {
        assertEquals(Arrays.asList("fd00:0:0:0:0:0:1:7000"), parse("fd00::1:7000", false));
    }

    @Test
    void removesDuplicatesKeepingOrder()
    {
        assertEquals(Arrays.asList("10.0.0.2", "10.0.0.1", "[0:0:0:0:0:0:0:1]:7000"),
                     parse("10.0.0.2,10.0.0.1,10.0.0.2,[::1]:7000,[0::1]:7000", false));
    }

    @Test
    void skipsGarbageAndKeepsTheRest()
    {
        List<String> seeds = parse("10.0.0.1,garbage!,10.0.0.256,010.0.0.1,10.1,[10.0.0.1]:7000,10.0.0.2:0,"
                                   + "10.0.0.2:70000,10.0.0.2:x,[::1,[::1]x,fe80::1%eth0,<html>,10.0.0.2", false);
        assertEquals(Arrays.asList("10.0.0.1", "10.0.0.2"), seeds);
        assertEquals(Arrays.asList("garbage!", "10.0.0.256", "010.0.0.1", "10.1", "[10.0.0.1]:7000", "10.0.0.2:0",
                                   "10.0.0.2:70000", "10.0.0.2:x", "[::1", "[::1]x", "fe80::1%eth0", "<html>"),
                     skipped);
    }

    @Test
    void refusesHostNamesWhereOnlyAddressesAreAllowed()
    {
        assertTrue(parse("cassandra-0.cassandra,localhost", false).isEmpty());
        assertEquals(2, skipped.size());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                                                  () -> SeedListParser.parseEntry("cassandra-0", false));
        assertTrue(e.getMessage().contains("host names are not accepted"), e.getMessage());
    }

    @Test
    void acceptsHostNamesInTheStaticList()
    {
        assertEquals(Arrays.asList("cassandra-0.cassandra.default.svc.cluster.local", "seed-1:7000", "10.0.0.9"),
                     parse("Cassandra-0.cassandra.default.svc.cluster.local, seed-1:7000, 10.0.0.9", true));
        assertFalse(SeedListParser.parseEntry("seed-1", true).isLiteral());
    }

    @ParameterizedTest
    @ValueSource(strings = { "-seed", "seed-", "se_ed", "a..b", "1.2.3", "seed.123", "x:", ":7000", "seed:7000:1" })
    void refusesInvalidHostNames(String entry)
    {
        assertThrows(IllegalArgumentException.class, () -> SeedListParser.parseEntry(entry, true));
    }
}
