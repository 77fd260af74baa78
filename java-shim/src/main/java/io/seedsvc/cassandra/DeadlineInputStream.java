package io.seedsvc.cassandra;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;

/**
 * A socket's input where each read waits at most {@code min(read timeout, time left)}, so a
 * peer that drips bytes cannot stretch one request past its {@link RequestDeadline}.
 */
final class DeadlineInputStream extends InputStream
{
    private final Socket socket;
    private final InputStream in;
    private final RequestDeadline deadline;
    private final int readTimeoutMs;

    DeadlineInputStream(Socket socket, RequestDeadline deadline, int readTimeoutMs) throws IOException
    {
        this.socket = socket;
        this.in = socket.getInputStream();
        this.deadline = deadline;
        this.readTimeoutMs = readTimeoutMs;
    }

    @Override
    public int read() throws IOException
    {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException
    {
        int timeoutMs = deadline.bound(readTimeoutMs);
        socket.setSoTimeout(timeoutMs);
        try
        {
            return in.read(buffer, offset, length);
        }
        catch (SocketTimeoutException e)
        {
            // Given the time left rather than the read timeout: the deadline is what ran out,
            // even if the clock shows a fraction of a millisecond to spare.
            if (timeoutMs < readTimeoutMs || deadline.passed())
                throw deadline.timeout();
            throw new SocketTimeoutException("no data for " + readTimeoutMs + " ms (read_timeout_ms)");
        }
    }

    @Override
    public void close() throws IOException
    {
        in.close();
    }
}
