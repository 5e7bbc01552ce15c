// The library's own pool (worker_pool.h). Halide's pool wakes its workers through a
// condition variable after a few dozen yields, which costs about a short call's length:
// two threads ran 0.9-1.6x the speed of one on calls of 40-100 us, against 1.5-1.95x for
// workers that spin between calls. So a loop is published in a slot, the calling thread
// runs iterations at once, and workers that are awake join it; a worker spins for
// kSpinMicros after its last work (yielding the core after kPauseMicros), then sleeps.
//
// Nothing waits for a worker that has not joined: a loop finishes on the calling thread
// alone when the workers are asleep, busy elsewhere, or missing. Nested loops
// (parallel n, then groups within n) and loops of concurrent callers each take a slot;
// with no slot free a loop runs in order on its caller.
#include "worker_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <pthread.h>
#include <mutex>
#include <new>
#include <exception>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace {

constexpr int kSlots = 32;
constexpr int kSpinMicros = 100;  // like OpenMP's spin: enough to span back-to-back calls
constexpr int kPauseMicros = 20;  // then sched_yield: a runnable thread of the caller's wins
constexpr uint32_t kOpen = 1u << 31;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// One published loop. The owner writes the plain fields while the slot is closed and opens
// it (release); a helper reads them only after joining (acquire on ctl); the owner hands the
// slot back (release on `taken`) only after every helper has left, and the next owner takes
// it (acquire), so no helper reads the fields while they are rewritten.
struct alignas(64) Slot {
    std::atomic<bool> taken{false};  // owned by a loop
    std::atomic<uint32_t> ctl{0};    // kOpen while helpers may join, | helpers inside
    std::atomic<int> next{0};        // next iteration to claim
    std::atomic<int> size_hint{0};   // size, readable without joining (a hint only)
    std::atomic<int> result{0};      // the first non-zero result of an iteration
    void *user_context = nullptr;
    halide_task_t body = nullptr;
    int min = 0, size = 0;
    uint8_t *closure = nullptr;
};

struct Pool {
    Slot slots[kSlots];
    std::atomic<uint64_t> epoch{0};  // bumped at every publication
    std::atomic<int> sleepers{0};
    std::atomic<bool> stop{false};
    std::mutex mutex;  // for the sleepers' condition variable
    std::condition_variable wake;

    // Worker management: worker_pool_resize (no loop running) and the first loop after it.
    std::mutex start_mutex;
    std::atomic<bool> started{false};
    int wanted = 0;
    std::vector<std::thread> workers;

    Pool();
    void start_workers();
    void stop_workers(int then_wanted);
};

// Never destroyed: a loop may still run after static destructors (a detached thread's), and
// the workers, asleep or spinning, end with the process.
Pool &pool() {
    static Pool &p = *new Pool;
    return p;
}

// A forked child has none of the parent's workers, and a lock or slot may have been held by
// one of them at the fork: start afresh (re-creating the locks, as a child must when their
// holders are gone). The parent's std::thread objects are kept, never joined or detached
// (glibc has already reclaimed those threads in the child), and stay reachable.
void after_fork_in_child() {
    Pool &p = pool();
    static auto &abandoned = *new std::vector<std::thread>();
    for (std::thread &t : p.workers) abandoned.push_back(std::move(t));
    p.workers.clear();
    new (&p.mutex) std::mutex();
    new (&p.start_mutex) std::mutex();
    new (&p.wake) std::condition_variable();
    p.sleepers.store(0);
    p.stop.store(false);
    p.started.store(false);
    for (Slot &s : p.slots) {
        s.taken.store(false);
        s.ctl.store(0);
    }
}

Pool::Pool() : wanted(groupnorm::detail::default_thread_count() - 1) {
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
}

thread_local int loop_depth = 0;  // loops this thread is inside (owned, helped, in order)

// Claims and runs s's iterations until none is left, one failed, or `until` (the caller's
// own loop, which it waits for while helping) has no helper left.
void run_iterations(Slot &s, const Slot *until = nullptr) {
    while (s.result.load(std::memory_order_relaxed) == 0) {
        if (until && until->ctl.load(std::memory_order_acquire) == 0) return;
        int i = s.next.fetch_add(1, std::memory_order_relaxed);
        if (i >= s.size) return;
        if (int r = s.body(s.user_context, s.min + i, s.closure)) {
            int zero = 0;
            s.result.compare_exchange_strong(zero, r, std::memory_order_relaxed);
        }
    }
}

// Joins s if it is open with iterations left and none failed, runs what it can claim,
// leaves. True if it joined.
bool try_help(Slot &s, const Slot *until) {
    uint32_t c = s.ctl.load(std::memory_order_acquire);
    while ((c & kOpen) && s.result.load(std::memory_order_relaxed) == 0 &&
           s.next.load(std::memory_order_relaxed) < s.size_hint.load(std::memory_order_relaxed)) {
        if (s.ctl.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
            loop_depth++;
            run_iterations(s, until);
            loop_depth--;
            s.ctl.fetch_sub(1, std::memory_order_release);
            return true;
        }
    }
    return false;
}

bool help_any(Pool &p, const Slot *until = nullptr) {
    bool helped = false;
    for (Slot &s : p.slots) {
        if (until && until->ctl.load(std::memory_order_acquire) == 0) break;
        helped |= try_help(s, until);
    }
    return helped;
}

void worker_main(Pool &p) {
    using Clock = std::chrono::steady_clock;
    for (;;) {
        uint64_t seen = p.epoch.load(std::memory_order_seq_cst);
        if (p.stop.load(std::memory_order_acquire)) return;
        if (help_any(p)) continue;
        // Nothing to do: wait for a publication, spinning, then yielding, then asleep.
        const Clock::time_point start = Clock::now();
        bool published = false;
        for (int spins = 0; !published; spins++) {
            published = p.epoch.load(std::memory_order_acquire) != seen ||
                        p.stop.load(std::memory_order_relaxed);
            if (published || (spins & 63) != 63) {
                cpu_relax();
                continue;
            }
            auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
                Clock::now() - start).count();
            if (waited >= kSpinMicros) break;
            if (waited >= kPauseMicros) std::this_thread::yield();
        }
        if (published) continue;
        std::unique_lock<std::mutex> lock(p.mutex);
        p.sleepers.fetch_add(1, std::memory_order_seq_cst);
        p.wake.wait(lock, [&] {
            return p.epoch.load(std::memory_order_seq_cst) != seen ||
                   p.stop.load(std::memory_order_relaxed);
        });
        p.sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
}

void Pool::start_workers() {
    std::lock_guard<std::mutex> lock(start_mutex);
    if (started.load(std::memory_order_relaxed)) return;
    for (int i = 0; i < wanted; i++) {
        try {
            workers.emplace_back(worker_main, std::ref(*this));
        } catch (const std::exception &) {
            break;  // fewer workers: loops still finish on their callers
        }
    }
    started.store(true, std::memory_order_release);
}

void Pool::stop_workers(int then_wanted) {
    std::lock_guard<std::mutex> start_lock(start_mutex);
    {
        std::lock_guard<std::mutex> lock(mutex);
        stop.store(true, std::memory_order_release);
    }
    wake.notify_all();
    for (std::thread &t : workers) t.join();
    workers.clear();
    wanted = then_wanted;
    stop.store(false, std::memory_order_release);
    started.store(false, std::memory_order_release);
}

Slot *take_slot(Pool &p) {
    for (Slot &s : p.slots) {
        if (!s.taken.load(std::memory_order_relaxed) &&
            !s.taken.exchange(true, std::memory_order_acquire)) {
            return &s;
        }
    }
    return nullptr;
}

int run_in_order(void *user_context, halide_task_t body, int min, int size,
                 uint8_t *closure) {
    int result = 0;
    loop_depth++;
    for (int i = 0; i < size && result == 0; i++) result = body(user_context, min + i, closure);
    loop_depth--;
    return result;
}

}  // namespace

int groupnorm::detail::worker_pool_do_par_for(void *user_context, halide_task_t body, int min,
                                              int size, uint8_t *closure) {
    Pool &p = pool();
    if (!p.started.load(std::memory_order_acquire)) p.start_workers();
    Slot *s = size > 1 ? take_slot(p) : nullptr;
    if (!s) return run_in_order(user_context, body, min, size, closure);

    s->user_context = user_context;
    s->body = body;
    s->min = min;
    s->size = size;
    s->closure = closure;
    s->next.store(0, std::memory_order_relaxed);
    s->result.store(0, std::memory_order_relaxed);
    s->size_hint.store(size, std::memory_order_relaxed);
    s->ctl.store(kOpen, std::memory_order_release);
    p.epoch.fetch_add(1, std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(p.mutex);
        p.wake.notify_all();
    }

    loop_depth++;
    run_iterations(*s);
    s->ctl.fetch_and(~kOpen, std::memory_order_acq_rel);  // no helper joins from here on
    // Wait for the helpers inside. An outermost loop helps other open loops meanwhile (a
    // helper's nested loop, say), stopping as soon as its own helpers have left; nested
    // ones only wait, which bounds the stack.
    for (int spins = 0; s->ctl.load(std::memory_order_acquire) != 0; spins++) {
        if (loop_depth == 1 && help_any(p, s)) continue;
        if (spins < 4096) {
            cpu_relax();
        } else {
            std::this_thread::yield();
        }
    }
    loop_depth--;
    int result = s->result.load(std::memory_order_relaxed);
    s->taken.store(false, std::memory_order_release);
    return result;
}

void groupnorm::detail::worker_pool_resize(int workers) { pool().stop_workers(workers); }

int groupnorm::detail::default_thread_count() {
    int n = 0;
    if (const char *env = std::getenv("HL_NUM_THREADS")) n = std::atoi(env);
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    if (n < 1) n = 1;
    return n < kMaxThreads ? n : kMaxThreads;
}
