package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SeedCacheFileTest
{
    @TempDir
    Path dir;

    private final List<String> skipped = new ArrayList<>();

    @Test
    void roundTripsAListInTheSidecarsFormat() throws Exception
    {
        SeedCacheFile cache = new SeedCacheFile(dir.resolve("sub/dir/seeds"));
        List<SeedEntry> seeds = SeedListParser.parse("10.0.0.1,fd00::1,[::1]:7001", false, (e, r) -> { });
        cache.write(seeds);
        assertEquals("10.0.0.1,fd00:0:0:0:0:0:0:1,[0:0:0:0:0:0:0:1]:7001\n",
                     new String(Files.readAllBytes(dir.resolve("sub/dir/seeds")), StandardCharsets.UTF_8));
        assertEquals(seeds, cache.read((e, r) -> skipped.add(e)));
        assertTrue(skipped.isEmpty());
    }

    @Test
    void aMissingFileIsEmpty() throws Exception
    {
        assertTrue(new SeedCacheFile(dir.resolve("absent")).read((e, r) -> { }).isEmpty());
    }

    @Test
    void replacesAtomicallyAndLeavesNoTemporaryFiles() throws Exception
    {
        SeedCacheFile cache = new SeedCacheFile(dir.resolve("seeds"));
        cache.write(SeedListParser.parse("10.0.0.1", false, (e, r) -> { }));
        cache.write(SeedListParser.parse("10.0.0.2,10.0.0.3", false, (e, r) -> { }));
        try (Stream<Path> files = Files.list(dir))
        {
            assertEquals(Arrays.asList("seeds"),
                         files.map(p -> p.getFileName().toString()).collect(Collectors.toList()));
        }
        assertEquals("10.0.0.2,10.0.0.3\n", new String(Files.readAllBytes(dir.resolve("seeds")), StandardCharsets.UTF_8));
    }

    @Test
    void skipsGarbageAndHostNamesWhenReading() throws Exception
    {
        Files.write(dir.resolve("seeds"), "10.0.0.1,not-an-ip,10.0.0.300\n".getBytes(StandardCharsets.UTF_8));
        List<SeedEntry> seeds = new SeedCacheFile(dir.resolve("seeds")).read((e, r) -> skipped.add(e));
        assertEquals("[10.0.0.1]", seeds.toString());
        assertEquals(Arrays.asList("not-an-ip", "10.0.0.300"), skipped);
    }
}
