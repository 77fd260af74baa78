package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;

/**
 * {@code https} URLs: a real TLS server on 127.0.0.1 with a certificate made by the JDK's own
 * keytool for this test. The client trusts that certificate through the fetcher's socket-factory
 * seam (the JVM-wide default trust store stays untouched), so what is checked is the shim's own
 * part: the handshake, host-name verification, and the request deadline around the handshake.
 */
class HttpsSeedFetcherTest
{
    private static final String PASSWORD = "changeit";

    /** Made once per class: each keytool run is a JVM start, seconds on a loaded machine. */
    @TempDir
    static Path dir;
    private static KeyStore forLoopback;
    private static KeyStore forAnotherHost;

    private HttpsServer server;
    private ScriptedHttpServer silent;

    @BeforeAll
    static void makeCertificates() throws Exception
    {
        forLoopback = keyStore("ip:127.0.0.1");
        forAnotherHost = keyStore("dns:sidecar.invalid");
    }

    @AfterEach
    void stop()
    {
        if (server != null)
            server.stop(0);
        if (silent != null)
            silent.close();
    }

    @Test
    void fetchesOverTlsWhenTheCertificateNamesTheAddress() throws Exception
    {
        SidecarAnswer answer = fetcher(serve(forLoopback), forLoopback).fetch(null, 0);
        assertEquals(200, answer.status);
        assertEquals("10.0.0.1,10.0.0.2", answer.body);
    }

    @Test
    void refusesACertificateForAnotherHostEvenWhenItsIssuerIsTrusted() throws Exception
    {
        HttpSeedFetcher fetcher = fetcher(serve(forAnotherHost), forAnotherHost);
        SSLException e = assertThrows(SSLException.class, () -> fetcher.fetch(null, 0));
        assertTrue(String.valueOf(e.getMessage()).contains("127.0.0.1"), String.valueOf(e.getMessage()));
    }

    @Test
    void aServerThatNeverAnswersTheHandshakeIsCutAtTheRequestDeadline() throws Exception
    {
        // Accepts the connection, reads the ClientHello, says nothing: only the deadline ends it.
        silent = new ScriptedHttpServer((request, out) -> { });
        HttpSeedFetcher fetcher = new HttpSeedFetcher(new URL(silent.url().replace("http:", "https:")),
                                                      500, 60_000, 1000, clientTrusting(forLoopback));
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> fetcher.fetch(null, 0));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        // Generous: a 1 s deadline against a read timeout of a minute.
        assertTrue(elapsedMs >= 900 && elapsedMs < 30_000, "elapsed " + elapsedMs + " ms");
        assertTrue(e.getMessage().contains("request_timeout_ms"), e.getMessage());
    }

    private HttpSeedFetcher fetcher(URL url, KeyStore trusted) throws Exception
    {
        return new HttpSeedFetcher(url, 500, 60_000, 60_000, clientTrusting(trusted));
    }

    private URL serve(KeyStore keys) throws Exception
    {
        KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keyManagers.init(keys, PASSWORD.toCharArray());
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keyManagers.getKeyManagers(), null, null);
        server = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setHttpsConfigurator(new HttpsConfigurator(context));
        server.createContext("/seeds", exchange -> {
            byte[] body = "10.0.0.1,10.0.0.2".getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody())
            {
                out.write(body);
            }
        });
        server.start();
        return new URL("https://127.0.0.1:" + server.getAddress().getPort() + "/seeds");
    }

    /** A client that trusts exactly the certificate in {@code keys}. */
    private static SSLSocketFactory clientTrusting(KeyStore keys) throws Exception
    {
        KeyStore trusted = KeyStore.getInstance("PKCS12");
        trusted.load(null, null);
        trusted.setCertificateEntry("sidecar", keys.getCertificate("sidecar"));
        TrustManagerFactory trustManagers = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trustManagers.init(trusted);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trustManagers.getTrustManagers(), null);
        return context.getSocketFactory();
    }

    /** A self-signed EC key pair whose certificate has subject alternative name {@code san}. */
    private static KeyStore keyStore(String san) throws Exception
    {
        Path file = dir.resolve("sidecar-" + san.replace(':', '-') + ".p12");
        String keytool = System.getProperty("java.home") + File.separator + "bin" + File.separator + "keytool";
        Process process = new ProcessBuilder(keytool, "-genkeypair", "-alias", "sidecar", "-keyalg", "EC",
                                             "-dname", "CN=seedsvc-test", "-ext", "SAN=" + san, "-validity", "2",
                                             "-storetype", "PKCS12", "-keystore", file.toString(),
                                             "-storepass", PASSWORD, "-keypass", PASSWORD)
            .redirectErrorStream(true).start();
        String output = new String(readAll(process.getInputStream()), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "keytool did not finish");
        assertEquals(0, process.exitValue(), output);
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(file))
        {
            keys.load(in, PASSWORD.toCharArray());
        }
        return keys;
    }

    private static byte[] readAll(InputStream in) throws IOException
    {
        try (InputStream stream = in)
        {
            return stream.readAllBytes();
        }
    }
}
