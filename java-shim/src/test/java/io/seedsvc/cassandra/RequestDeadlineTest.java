package io.seedsvc.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.SocketTimeoutException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Test;

/** The deadline's arithmetic and its watchdog, which closes what a read timeout cannot bound. */
class RequestDeadlineTest
{
    @Test
    void boundsATimeoutByTheTimeLeftAndNeverToZero() throws Exception
    {
        RequestDeadline deadline = RequestDeadline.after(60_000);
        assertEquals(1000, deadline.bound(1000));
        assertTrue(deadline.bound(Integer.MAX_VALUE) <= 60_000);
        assertFalse(deadline.passed());
    }

    @Test
    void aPassedDeadlineRefusesToBoundAnotherStep()
    {
        RequestDeadline deadline = RequestDeadline.after(0);
        assertTrue(deadline.passed());
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class, () -> deadline.bound(1000));
        assertEquals("no complete answer within 0 ms (request_timeout_ms plus any long-poll wait)", e.getMessage());
    }

    @Test
    void theWatchdogClosesAtTheDeadlineUnlessCancelled() throws Exception
    {
        CountDownLatch closed = new CountDownLatch(1);
        long start = System.nanoTime();
        RequestDeadline.after(200).closeWhenPassed(closed::countDown);
        // Generous: it must happen, and not before the deadline.
        assertTrue(closed.await(30, TimeUnit.SECONDS), "not closed");
        long elapsedNanos = System.nanoTime() - start;
        assertTrue(elapsedNanos >= TimeUnit.MILLISECONDS.toNanos(200), "closed after " + elapsedNanos + " ns");

        AtomicBoolean cancelledClosed = new AtomicBoolean();
        Future<?> watchdog = RequestDeadline.after(200).closeWhenPassed(() -> cancelledClosed.set(true));
        assertTrue(watchdog.cancel(false));
        Thread.sleep(600);
        assertFalse(cancelledClosed.get(), "closed although cancelled");
    }
}
