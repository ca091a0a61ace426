#!/usr/bin/python3
"""classify.py LOG — prints why a libFuzzer stop is libhdf5's own bug and not segqa's, or nothing.

libhdf5 1.10.8 (not instrumented) is not memory-safe on corrupt files: fuzz_site finds it looping,
segfaulting, reading through wild pointers, overwriting heap headers and copying onto itself within a few hundred inputs
(global heap, object header messages, B-trees). The fuzz targets judge segqa's code around it, so a
stop is libhdf5's when the first frame below the runtime (sanitizer, libFuzzer, libc) is inside
libhdf5 and, for a heap error, the memory was not allocated by segqa (a short buffer segqa hands to
H5Aread/H5Dread is segqa's bug). A leak is libhdf5's when libhdf5 allocated every lost block off
its variable-length path (leak_is_libhdf5s). UBSan reports and everything else are segqa's."""
import re, sys

RUNTIME = re.compile(r"fuzzer::|libc\.so|sanitizer|__interceptor_|__asan|__lsan|__ubsan|"
                     r"libFuzzer|__libc_start|in _start |in (malloc|calloc|realloc|free) ")
FRAME = re.compile(r"^ +#\d+ 0x[0-9a-f]+ ")


def first_frame(lines, start):
    """The first non-runtime frame of the first stack at or after line start ("" if none)."""
    in_stack = False
    for ln in lines[start:]:
        if FRAME.match(ln):
            in_stack = True
            if not RUNTIME.search(ln):
                return ln.strip()
        elif in_stack:
            return ""
    return ""


def find(lines, pattern):
    return next((i for i, ln in enumerate(lines) if re.search(pattern, ln)), None)


def leak_is_libhdf5s(lines):
    """A leak report is libhdf5's when every leaked block was allocated by libhdf5 (first frame
    below malloc) and not on the variable-length read path, whose buffers libhdf5 hands to the
    caller to free. A handle segqa forgets to close is not a leak to LSan at all: libhdf5's ID
    tables, reachable from its globals, still point at it; so what LSan finds inside libhdf5 is
    memory libhdf5 itself lost on an error path."""
    starts = [k for k, ln in enumerate(lines) if re.match(r"(Direct|Indirect) leak of", ln)]
    if not starts:
        return ""
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        block = lines[a:b]
        if "libhdf5" not in first_frame(block, 1) or any("vlen" in ln for ln in block):
            return ""
    return f"a leak inside libhdf5 ({len(starts)} blocks, all allocated by libhdf5)"


def why(lines):
    i = find(lines, r"ERROR: libFuzzer: (timeout|out-of-memory \(malloc)")
    if i is not None:
        f = first_frame(lines, i + 1)
        what = "a hang" if "timeout" in lines[i] else "a huge allocation"
        return f"{what} inside libhdf5: {f}" if "libhdf5" in f else ""
    i = find(lines, r"ERROR: LeakSanitizer: detected memory leaks")
    if i is not None:
        return leak_is_libhdf5s(lines[i + 1:])
    i = find(lines, r"AddressSanitizer: CHECK failed: asan_allocator")
    if i is not None:  # a heap chunk header overwritten: segqa's writes are checked, libhdf5's are not
        f = first_frame(lines, i + 1)
        return f"heap corruption found freeing libhdf5's memory: {f}" if "libhdf5" in f else ""
    i = find(lines, r"ERROR: AddressSanitizer: ")
    if i is None:
        return ""
    f = first_frame(lines, i + 1)
    if "libhdf5" not in f:
        return ""
    a = find(lines[i:], r"(allocated|freed) by thread")
    if a is not None and "libhdf5" not in first_frame(lines, i + a + 1):
        return ""  # segqa's buffer
    kind = re.search(r"AddressSanitizer: ([\w-]+)", lines[i]).group(1)
    return f"{kind} inside libhdf5: {f}"


H5 = "(/lib/x86_64-linux-gnu/libhdf5_serial.so.103+0x1)"
SELF_TEST = (  # (log, library's?) — the rules above on the shapes of real reports
    (["==1==ERROR: AddressSanitizer: SEGV on unknown address", "    #0 0x1 in H5HG_read " + H5,
      "    #1 0x2 in sq_h5_attr_read_str src/data/h5attr.c:19"], True),
    (["==1==ERROR: AddressSanitizer: heap-buffer-overflow on address", "READ of size 8",
      "    #0 0x1 in __interceptor_memcpy (fuzz_site+0x8)", "    #1 0x2 in H5Aread " + H5, "",
      "0x6 is located 0 bytes to the right of 8-byte region", "allocated by thread T0 here:",
      "    #0 0x3 in calloc (fuzz_site+0x9)", "    #1 0x4 in sq_h5_attr_read_str src/data/h5attr.c:25"],
     False),
    (["==1==ERROR: AddressSanitizer: heap-use-after-free", "    #0 0x1 in sq_site_close src/data/site.c:9"],
     False),
    (["==1== ERROR: libFuzzer: timeout after 5 seconds", "    #0 0x1 in __sanitizer_print_stack_trace (f)",
      "    #1 0x2 in fuzzer::PrintStackTrace() (f)", "    #3 0x3  (/lib/x86_64-linux-gnu/libc.so.6+0x3)",
      "    #4 0x4 in H5C_protect " + H5], True),
    (["==1== ERROR: libFuzzer: timeout after 5 seconds", "    #0 0x1 in __sanitizer_print_stack_trace (f)",
      "    #4 0x4 in sq_crop_box src/data/crop.c:40"], False),
    (["AddressSanitizer: CHECK failed: asan_allocator.cpp:188 \"((old)) == ((kAllocBegMagic))\"",
      "    #1 0x1 in __sanitizer::CheckFailed(char const*) (f)", "    #6 0x2 in free (f)",
      "    #7 0x3  " + H5, "    #8 0x4 in H5FL_reg_free " + H5], True),
    (["src/data/site.c:12:5: runtime error: signed integer overflow"], False),
    (["==1==ERROR: LeakSanitizer: detected memory leaks", "", "Direct leak of 848 byte(s)",
      "    #0 0x1 in malloc (f)", "    #1 0x2  " + H5, "    #2 0x3 in H5FL_reg_malloc " + H5,
      "    #9 0x4 in H5Dopen2 " + H5, "    #10 0x5 in check_dataset src/data/site.c:337", "",
      "Indirect leak of 16 byte(s)", "    #0 0x1 in malloc (f)", "    #1 0x6 in H5MM_malloc " + H5],
     True),
    (["==1==ERROR: LeakSanitizer: detected memory leaks", "", "Direct leak of 848 byte(s)",
      "    #0 0x1 in malloc (f)", "    #1 0x2  " + H5, "", "Direct leak of 64 byte(s)",
      "    #0 0x1 in malloc (f)", "    #1 0x7 in sq_site_open src/data/site.c:40"], False),
    (["==1==ERROR: LeakSanitizer: detected memory leaks", "", "Direct leak of 6 byte(s)",
      "    #0 0x1 in malloc (f)", "    #1 0x2 in H5MM_malloc " + H5,
      "    #2 0x3 in H5T__conv_vlen " + H5, "    #5 0x4 in sq_h5_attr_read_str src/data/h5attr.c:20"],
     False),
)


def self_test():
    bad = [n for n, (log, lib) in enumerate(SELF_TEST) if bool(why(log)) != lib]
    print(f"classify.py self-test: {len(SELF_TEST) - len(bad)}/{len(SELF_TEST)} ok"
          + (f", wrong: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "--self-test":
        sys.exit(self_test())
    text = open(sys.argv[1], errors="replace").read().splitlines()
    reason = why(text)
    if reason:
        print(re.sub(r" \(BuildId: [0-9a-f]+\)", "", reason))
