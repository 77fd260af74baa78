package io.seedsvc.cassandra;

import java.io.Closeable;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The total time one request to the sidecar may take, from connect to the last body byte.
 *
 * <p>A per-read timeout alone does not bound a request: a server that sends one byte just inside
 * every read timeout holds the caller for as long as it likes. Reads are therefore given
 * {@code min(read timeout, time left)} ({@link #bound(int)}), and as a backstop for the steps that
 * read several times under one timeout (the TLS handshake) the socket is closed when the time is
 * up ({@link #closeWhenPassed(Closeable)}).
 */
final class RequestDeadline
{
    /**
     * One daemon thread, shared, and only while requests are in flight: it ends after 10 s idle,
     * so a node whose live reload is off keeps no extra thread.
     */
    private static final ScheduledThreadPoolExecutor WATCHDOG = newWatchdog();

    private final long budgetMs;
    private final long deadlineNanos;

    private RequestDeadline(long budgetMs)
    {
        this.budgetMs = budgetMs;
        this.deadlineNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(budgetMs);
    }

    /** @param budgetMs the whole request's allowance, from now */
    static RequestDeadline after(long budgetMs)
    {
        return new RequestDeadline(budgetMs);
    }

    long budgetMs()
    {
        return budgetMs;
    }

    boolean passed()
    {
        return deadlineNanos - System.nanoTime() <= 0;
    }

    /**
     * @return {@code timeoutMs}, shortened to the time left, rounded up so that a step given the
     *         time left does not end before the deadline (and never 0, "forever" to a socket)
     * @throws SocketTimeoutException if the deadline has passed already
     */
    int bound(int timeoutMs) throws SocketTimeoutException
    {
        long leftNanos = deadlineNanos - System.nanoTime();
        if (leftNanos <= 0)
            throw timeout();
        long leftMs = (leftNanos + 999_999) / 1_000_000;
        return (int) Math.min(timeoutMs, leftMs);
    }

    /** The exception every deadline failure is reported as, whatever step it cut short. */
    Exceeded timeout()
    {
        return new Exceeded(budgetMs);
    }

    /** The request ran out of time (as opposed to one read timing out). */
    static final class Exceeded extends SocketTimeoutException
    {
        private static final long serialVersionUID = 1L;

        Exceeded(long budgetMs)
        {
            super("no complete answer within " + budgetMs + " ms (request_timeout_ms plus any long-poll wait)");
        }
    }

    /** Closes {@code resource} once the deadline has passed; cancel the result when done. */
    Future<?> closeWhenPassed(Closeable resource)
    {
        long delayNanos = Math.max(0, deadlineNanos - System.nanoTime());
        return WATCHDOG.schedule(() -> {
            try
            {
                resource.close();
            }
            catch (IOException e)
            {
                // Closing is all the watchdog can do; the reader sees the closed socket either way.
            }
        }, delayNanos, TimeUnit.NANOSECONDS);
    }

    private static ScheduledThreadPoolExecutor newWatchdog()
    {
        ScheduledThreadPoolExecutor executor = new ScheduledThreadPoolExecutor(1, runnable -> {
            Thread thread = new Thread(runnable, "seedsvc-request-deadline");
            thread.setDaemon(true);
            return thread;
        });
        executor.setRemoveOnCancelPolicy(true);
        executor.setKeepAliveTime(10, TimeUnit.SECONDS);
        executor.allowCoreThreadTimeOut(true);
        return executor;
    }
}
