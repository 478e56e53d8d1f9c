/* How long each `write` of a 40-byte record takes when appending at 100k/s
 * (open loop, spinning between records), counted by duration.
 *
 *   gcc -O2 -o append-first-touch append-first-touch.c
 *   ./append-first-touch FILE 300000            # appends (O_APPEND)
 *   ./append-first-touch FILE 300000 same-page  # pwrite into the first 4 KiB
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int same_page = argc > 3 && strcmp(argv[3], "same-page") == 0;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | (same_page ? 0 : O_APPEND), 0644);
  if (fd < 0) return 1;
  int n = atoi(argv[2]);
  char buf[40];
  memset(buf, 'x', sizeof buf);
  long *took = malloc(sizeof(long) * n);
  long next = now_ns();
  for (int i = 0; i < n; i++) {
    next += 10000;
    while (now_ns() < next) {
    }
    long a = now_ns();
    if (same_page) {
      if (pwrite(fd, buf, sizeof buf, (i * 40) % 4096) < 0) return 1;
    } else if (write(fd, buf, sizeof buf) < 0) {
      return 1;
    }
    took[i] = now_ns() - a;
  }
  long limits[] = {5000, 10000, 20000, 50000, 100000, 500000};
  for (int j = 0; j < 6; j++) {
    int over = 0;
    for (int i = 0; i < n; i++) over += took[i] > limits[j];
    printf(">%ldus: %d (%.3f%%)\n", limits[j] / 1000, over, 100.0 * over / n);
  }
  unlink(argv[1]);
  return 0;
}
