/* The cost of one trivial system call (getppid) on this VM, 1,000,000 calls.
 *   gcc -O2 syscall.c -o syscall && ./syscall */
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    enum { CALLS = 1000000 };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < CALLS; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.3f us a system call\n", ns / CALLS / 1000);
    return 0;
}
