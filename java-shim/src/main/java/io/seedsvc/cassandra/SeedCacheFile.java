package io.seedsvc.cassandra;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.List;

/**
 * The last seed list the sidecar served, kept on disk so that a restarted node can start when the
 * sidecar is not (yet) answering.
 *
 * <p>Format: the sidecar's own body format, {@code 10.0.0.1,10.0.0.2} plus a newline, so an
 * operator can read or hand-write it. Writes are atomic (temporary file in the same directory,
 * fsync, rename): a reader sees the old list or the new one, never a torn one.
 */
final class SeedCacheFile
{
    private static final int MAX_BYTES = 64 * 1024;

    private final Path path;

    SeedCacheFile(Path path)
    {
        this.path = path.toAbsolutePath();
    }

    Path path()
    {
        return path;
    }

    /**
     * @return the IP-literal entries in the file (malformed ones reported and skipped); empty if
     *         the file does not exist
     * @throws IOException if the file exists but cannot be read
     */
    List<SeedEntry> read(SeedListParser.MalformedEntryListener listener) throws IOException
    {
        byte[] bytes;
        try
        {
            if (Files.size(path) > MAX_BYTES)
                throw new IOException(path + " is larger than " + MAX_BYTES + " bytes; not a seed cache");
            bytes = Files.readAllBytes(path);
        }
        catch (NoSuchFileException e)
        {
            return Collections.emptyList();
        }
        return SeedListParser.parse(new String(bytes, StandardCharsets.UTF_8), false, listener);
    }

    /**
     * Replaces the file's content with {@code seeds}, atomically. Creates missing parent
     * directories.
     */
    void write(List<SeedEntry> seeds) throws IOException
    {
        StringBuilder text = new StringBuilder();
        for (SeedEntry seed : seeds)
            text.append(text.length() == 0 ? "" : ",").append(seed);
        text.append('\n');

        Path dir = path.getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + path.getFileName() + ".", ".tmp");
        try
        {
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING))
            {
                channel.write(ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8)));
                // Data on disk before the rename makes it visible; otherwise a crash can leave an
                // empty file under the final name.
                channel.force(true);
            }
            try
            {
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
            catch (AtomicMoveNotSupportedException e)
            {
                // Some file systems cannot rename atomically; a plain replace is the best left.
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING);
            }
        }
        finally
        {
            Files.deleteIfExists(tmp);
        }
    }
}
