package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

import org.junit.jupiter.api.Test;

/** The packaged jar itself: Java 8 class files only, and nothing bundled besides the shim. */
class ShimJarIT
{
    private static final int JAVA_8_CLASS_FILE = 52;

    @Test
    void containsOnlyJava8ClassFilesOfTheShim() throws Exception
    {
        List<String> classes = new ArrayList<>();
        try (JarFile jar = new JarFile(System.getProperty("seedsvc.shim.jar")))
        {
            Enumeration<JarEntry> entries = jar.entries();
            while (entries.hasMoreElements())
            {
                JarEntry entry = entries.nextElement();
                String name = entry.getName();
                if (entry.isDirectory() || name.startsWith("META-INF/"))
                    continue;
                assertTrue(name.startsWith("io/seedsvc/cassandra/") && name.endsWith(".class"), "unexpected entry " + name);
                try (InputStream in = jar.getInputStream(entry); DataInputStream data = new DataInputStream(in))
                {
                    assertEquals(0xCAFEBABE, data.readInt(), name);
                    data.readUnsignedShort(); // minor
                    assertEquals(JAVA_8_CLASS_FILE, data.readUnsignedShort(), name + " must load on Cassandra 3.11's Java 8");
                }
                classes.add(name);
            }
        }
        assertTrue(classes.contains("io/seedsvc/cassandra/SidecarSeedProvider.class"), classes.toString());
    }
}
