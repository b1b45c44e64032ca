/* The line watcher and echo responder for scripts/check-gpio-vm.sh, run in
 * its VM against gpio-sim's sysfs attributes (sim_gpioN/value, .../pull).
 * C, not Python: a trigger pulse lasts tens of microseconds even under
 * emulation, and only a tight loop of pread()s sees it.
 *
 *   helper sample SECONDS INTERVAL_US VALUE_PATH...
 *       every INTERVAL_US reads each line; prints per line "sample PATH
 *       high=FRACTION samples=N rises=R seconds=S maxgap_ms=G" (FRACTION
 *       of the time it was high; G the longest time between two samples:
 *       how long the VM, this helper included, was stalled at worst)
 *   helper edges SECONDS INTERVAL_US VALUE_PATH...
 *       every INTERVAL_US reads each line; prints "level I T V" for each
 *       line I (0-based, in argument order) at the start, "edge I T V" at
 *       each change, and at the end "edges seconds=S samples=N
 *       maxgap_ms=G"; T is CLOCK_MONOTONIC in seconds (systemd's
 *       *TimestampMonotonic clock); stops after SECONDS or on SIGTERM
 *   helper respond SECONDS TRIGGER_VALUE_PATH ECHO_PULL_PATH DISTANCE_M QUIET_S
 *       polls the trigger line; counts its rises; with DISTANCE_M > 0 it
 *       answers each fall like an HC-SR04: the echo line goes high (pull-up)
 *       after ~0.5 ms for 2 x DISTANCE_M / 343.26 s (gpiozero's speed of
 *       sound), then low; prints "respond triggers=N answered=M
 *       mean_high_us=U" with the measured high time of its echoes; stops
 *       after SECONDS or on SIGTERM. After each trigger it sleeps until
 *       QUIET_S after its rise: the sensors' pings start a ping cycle
 *       apart (ranging.cycle_s, 60 ms), so no trigger comes sooner, and
 *       the spinning that times the echo leaves the emulated CPU free.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int open_or_die(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    return fd;
}

static int read_line(int fd) {
    char b[4];
    if (pread(fd, b, sizeof b, 0) < 1) {
        perror("pread");
        exit(2);
    }
    return b[0] == '1';
}

static void set_pull(int fd, const char *pull) {
    if (pwrite(fd, pull, strlen(pull), 0) < 0) {
        perror("pwrite pull");
        exit(2);
    }
}

static void sleep_until(double t) {
    struct timespec ts = {(time_t)t, (long)((t - (time_t)t) * 1e9)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static int sample(double seconds, long interval_us, int n, char **paths) {
    /* Time-weighted: each reading stands for the time until the next one,
     * so a late wake-up (emulation, load) neither drops nor double-counts
     * time; a missed deadline is skipped, not caught up in a burst. */
    int fd[n];
    long rises[n], last[n];
    double high_s[n];
    long samples = 0;
    for (int i = 0; i < n; i++) {
        fd[i] = open_or_die(paths[i], O_RDONLY);
        high_s[i] = 0;
        rises[i] = 0;
        last[i] = read_line(fd[i]);
    }
    double t0 = now_s(), prev = t0, next = t0, t, maxgap = 0;
    while ((t = now_s()) - t0 < seconds) {
        if (t - prev > maxgap) maxgap = t - prev;
        for (int i = 0; i < n; i++) {
            high_s[i] += last[i] ? t - prev : 0;
            int v = read_line(fd[i]);
            rises[i] += v && !last[i];
            last[i] = v;
        }
        prev = t;
        samples++;
        next += interval_us / 1e6;
        if (next < now_s()) next = now_s() + interval_us / 1e6;
        sleep_until(next);
    }
    for (int i = 0; i < n; i++)
        printf("sample %s high=%.4f samples=%ld rises=%ld seconds=%.3f maxgap_ms=%.1f\n", paths[i],
               high_s[i] / (prev - t0), samples, rises[i], prev - t0, maxgap * 1e3);
    return 0;
}

static int edges(double seconds, long interval_us, int n, char **paths) {
    /* The levels over time, as the runner would feel them: each change with
     * its time (a change lands up to one INTERVAL_US late, or up to
     * maxgap_ms when the VM stalled) */
    int fd[n], last[n];
    long samples = 0;
    signal(SIGTERM, on_term);
    double t0 = now_s(), prev = t0, next = t0, t, maxgap = 0;
    for (int i = 0; i < n; i++) {
        fd[i] = open_or_die(paths[i], O_RDONLY);
        last[i] = read_line(fd[i]);
        printf("level %d %.4f %d\n", i, t0, last[i]);
    }
    while (!stop && (t = now_s()) - t0 < seconds) {
        if (t - prev > maxgap) maxgap = t - prev;
        for (int i = 0; i < n; i++) {
            int v = read_line(fd[i]);
            if (v != last[i]) printf("edge %d %.4f %d\n", i, t, v);
            last[i] = v;
        }
        prev = t;
        samples++;
        next += interval_us / 1e6;
        if (next < now_s()) next = now_s() + interval_us / 1e6;
        sleep_until(next);
    }
    printf("edges seconds=%.3f samples=%ld maxgap_ms=%.1f\n", prev - t0, samples, maxgap * 1e3);
    return 0;
}

static int respond(double seconds, const char *trigger, const char *echo, double distance_m, double quiet_s) {
    int tfd = open_or_die(trigger, O_RDONLY);
    int efd = distance_m > 0 ? open_or_die(echo, O_WRONLY) : -1;
    double width = 2 * distance_m / 343.26, sum_high = 0;
    long triggers = 0, answered = 0;
    int last = read_line(tfd);
    double rose = 0;
    if (efd >= 0) set_pull(efd, "pull-down");
    double t0 = now_s();
    signal(SIGTERM, on_term);  /* the summary is printed on SIGTERM too */
    while (!stop && now_s() - t0 < seconds) {
        int v = read_line(tfd);
        if (v && !last) {
            triggers++;
            rose = now_s();
        }
        if (!v && last && efd >= 0) {
            /* spin, not sleep: a timer wake-up under emulation comes late
             * by up to milliseconds, a spin by one clock read */
            double fell = now_s();
            while (now_s() < fell + 0.0005) {}
            double up = now_s();
            set_pull(efd, "pull-up");
            while (now_s() < up + width) {}
            set_pull(efd, "pull-down");
            sum_high += now_s() - up;
            answered++;
        }
        if (!v && last) {
            sleep_until(rose + quiet_s);  /* no trigger comes sooner: leave the CPU free */
            v = read_line(tfd);
            if (v) {  /* a late wake-up (emulation) with the next trigger already high */
                triggers++;
                rose = now_s();
            }
        }
        last = v;
    }
    printf("respond triggers=%ld answered=%ld mean_high_us=%.0f\n", triggers, answered,
           answered ? sum_high / answered * 1e6 : 0.0);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && strcmp(argv[1], "sample") == 0)
        return sample(atof(argv[2]), atol(argv[3]), argc - 4, argv + 4);
    if (argc >= 5 && strcmp(argv[1], "edges") == 0)
        return edges(atof(argv[2]), atol(argv[3]), argc - 4, argv + 4);
    if (argc == 7 && strcmp(argv[1], "respond") == 0)
        return respond(atof(argv[2]), argv[3], argv[4], atof(argv[5]), atof(argv[6]));
    fprintf(stderr, "usage: helper sample|edges SECONDS INTERVAL_US VALUE_PATH... | "
                    "helper respond SECONDS TRIGGER_VALUE ECHO_PULL DISTANCE_M QUIET_S\n");
    return 2;
}
