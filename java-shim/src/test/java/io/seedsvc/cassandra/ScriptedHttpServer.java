package io.seedsvc.cassandra;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A real TCP server on 127.0.0.1 (ephemeral port) that answers each request with raw bytes from a
 * script: what {@code com.sun.net.httpserver} cannot be made to do on demand - drip headers or a
 * body a byte at a time, announce more body than it sends, cut a chunked stream, omit framing.
 */
final class ScriptedHttpServer implements AutoCloseable
{
    /** Writes the answer to one request; returning closes the connection. */
    interface Script
    {
        void answer(String requestLine, Responder out) throws IOException, InterruptedException;
    }

    /** The connection's output, with the two ways a hostile server writes. */
    static final class Responder
    {
        private final OutputStream out;

        Responder(OutputStream out)
        {
            this.out = out;
        }

        void send(String text) throws IOException
        {
            out.write(text.getBytes(StandardCharsets.UTF_8));
            out.flush();
        }

        /** One byte every {@code intervalMs}; stops quietly when the client hangs up. */
        void drip(String text, long intervalMs) throws IOException, InterruptedException
        {
            for (byte b : text.getBytes(StandardCharsets.UTF_8))
            {
                out.write(b);
                out.flush();
                Thread.sleep(intervalMs);
            }
        }
    }

    private final ServerSocket server;
    private final Script script;
    private final List<String> requests = new CopyOnWriteArrayList<>();
    private final Set<Socket> connections = ConcurrentHashMap.newKeySet();
    private final List<Thread> threads = new CopyOnWriteArrayList<>();

    ScriptedHttpServer(Script script) throws IOException
    {
        this.script = script;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(this::acceptLoop, "scripted-http-accept");
        acceptor.setDaemon(true);
        threads.add(acceptor);
        acceptor.start();
    }

    String url()
    {
        return "http://127.0.0.1:" + server.getLocalPort() + "/seeds";
    }

    /** Request heads received so far, each starting e.g. {@code GET /seeds?wait=1&generation=1 HTTP/1.1}. */
    List<String> requests()
    {
        return new ArrayList<>(requests);
    }

    @Override
    public void close()
    {
        try
        {
            server.close();
        }
        catch (IOException e)
        {
            // Closing is best effort; the threads below end either way.
        }
        for (Socket connection : connections)
        {
            try
            {
                connection.close();
            }
            catch (IOException e)
            {
                // As above.
            }
        }
        try
        {
            for (Thread thread : threads)
            {
                thread.interrupt();
                thread.join(10_000);
            }
        }
        catch (InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private void acceptLoop()
    {
        while (!server.isClosed())
        {
            try
            {
                Socket connection = server.accept();
                connections.add(connection);
                Thread handler = new Thread(() -> handle(connection), "scripted-http-conn");
                handler.setDaemon(true);
                threads.add(handler);
                handler.start();
            }
            catch (IOException e)
            {
                return; // closed
            }
        }
    }

    private void handle(Socket connection)
    {
        try (Socket c = connection)
        {
            String head = readRequestHead(c.getInputStream());
            if (head == null)
                return;
            requests.add(head);
            script.answer(head.substring(0, head.indexOf("\r\n")), new Responder(c.getOutputStream()));
        }
        catch (SocketException e)
        {
            // The client hung up (or close() did): what the deadline tests provoke.
        }
        catch (IOException e)
        {
            throw new AssertionError(e);
        }
        catch (InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
        finally
        {
            connections.remove(connection);
        }
    }

    /** @return the whole request head, CRLFs included; {@code null} if none came */
    private static String readRequestHead(InputStream in) throws IOException
    {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        byte[] end = {'\r', '\n', '\r', '\n'};
        while (matched < end.length)
        {
            int b = in.read();
            if (b < 0)
                return null;
            head.write(b);
            matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
        }
        return new String(head.toByteArray(), StandardCharsets.ISO_8859_1);
    }
}
