/* A token passed round a ring of K parties over pipes, 50,000 rounds; each party touches
 * PAGES pages of its own memory per wake-up. The parties are threads of one process
 * (MODE 0) or processes (MODE 1), unpinned. Prints the wall time and the CPU time (all
 * parties, user + system) per round.
 *   gcc -O2 -pthread ring.c -o ring && ./ring MODE K PAGES
 * Asks whether replicas as processes (corepax) pay more per wake-up than replicas as
 * threads of one process (the floor program) on this VM. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 50000, MAX_PARTIES = 8 };
static int pipes[MAX_PARTIES][2];
static int parties = 3, pages = 0;

static void *party(void *arg) {
    long me = (long)arg;
    char token, *mem = malloc((size_t)pages * 4096 + 1);
    for (int p = 0; p < pages; p++) mem[p * 4096] = 1;
    for (int n = 0; n < ROUNDS; n++) {
        if (read(pipes[me][0], &token, 1) != 1) exit(1);
        for (int p = 0; p < pages; p++) mem[p * 4096]++;
        if (write(pipes[(me + 1) % parties][1], &token, 1) != 1) exit(1);
    }
    return NULL;
}

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec * 1e-6; }

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int processes = atoi(argv[1]);
    parties = atoi(argv[2]);
    pages = atoi(argv[3]);
    if (parties < 2 || parties > MAX_PARTIES) return 2;
    for (int i = 0; i < parties; i++)
        if (pipe(pipes[i])) return 1;
    pid_t pids[MAX_PARTIES];
    pthread_t threads[MAX_PARTIES];
    for (long i = 1; i < parties; i++) {
        if (processes) {
            pids[i] = fork();
            if (pids[i] == 0) { party((void *)i); _exit(0); }
        } else {
            pthread_create(&threads[i], NULL, party, (void *)i);
        }
    }
    struct timespec t0, t1;
    char token = 'x';
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int n = 0; n < ROUNDS; n++) {
        if (write(pipes[1][1], &token, 1) != 1 || read(pipes[0][0], &token, 1) != 1) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 1; i < parties; i++) {
        if (processes) waitpid(pids[i], NULL, 0);
        else pthread_join(threads[i], NULL);
    }
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    double cpu = seconds(self.ru_utime) + seconds(self.ru_stime) + seconds(children.ru_utime) +
                 seconds(children.ru_stime);
    double wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("%s, ring of %d, %d pages a wake-up: %.2f us a round, CPU %.2f us a round\n",
           processes ? "processes" : "threads", parties, pages, wall / ROUNDS * 1e6,
           cpu / ROUNDS * 1e6);
    return 0;
}
