/*
 * pause: the first process of every pod, holding its namespaces open.
 *
 * Sleeps until SIGTERM or SIGINT and exits 0; reaps any child it inherits (it is PID 1 when the pod
 * shares its PID namespace). The signals stay blocked and are taken with sigwait, so there is no window
 * between checking a flag and going to sleep, and as PID 1 they are still delivered: the kernel only
 * drops signals an init process neither handles nor blocks.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

int main(void)
{
	sigset_t waited;
	int sig;

	sigemptyset(&waited);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGINT);
	sigaddset(&waited, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &waited, NULL) != 0)
		return 1;
	for (;;) {
		if (sigwait(&waited, &sig) != 0)
			return 1;
		if (sig != SIGCHLD)
			return 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
