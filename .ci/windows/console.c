/* console.exe: Ctrl-C in a Windows console, for the `models run` test under wine.
 *
 *   console.exe parent "CMDLINE"  starts CMDLINE in a console of its own (wine gives one
 *                                 without a window), waits until the command under test
 *                                 has started, presses Ctrl-C in that console (every
 *                                 process attached gets CTRL_C_EVENT, as when a user
 *                                 presses it), and prints `exit N`, CMDLINE's exit code.
 *   console.exe command           the program `models run` starts: it says it started,
 *                                 waits for its Ctrl-C, takes a second to wind up (as a
 *                                 program saving its work does), and exits 7.
 *   console.exe status "CMDLINE"  runs CMDLINE and prints `exit N`, its whole 32-bit exit
 *                                 code (wine hands Linux only the low byte of its own).
 *   console.exe exit N            exits with N (`256`, `3221225477` for 0xC0000005).
 *
 * A wrapper that dies at Ctrl-C ends with STATUS_CONTROL_C_EXIT (3221225786) before its
 * command is done; one that outlives its command passes 7 on. The command says it
 * started through a named event, so nothing waits on a timer. */
#include <windows.h>
#include <stdio.h>
#include <wchar.h>

#define STARTED L"xtask-test-command-started"

static HANDLE got_ctrl_c;

static BOOL WINAPI note(DWORD type) {
    if (type != CTRL_C_EVENT) return FALSE;
    SetEvent(got_ctrl_c);
    return TRUE;
}

/* The parent's own Ctrl-C is not its end: it must report the exit code. A handler,
 * not SetConsoleCtrlHandler(NULL, TRUE), which processes started later would inherit. */
static BOOL WINAPI ignore(DWORD type) { return type == CTRL_C_EVENT; }

/* Waits for `process` and prints `exit N`, its whole exit code. */
static int report_exit(HANDLE process) {
    WaitForSingleObject(process, 300000);
    DWORD code = 0;
    GetExitCodeProcess(process, &code);
    printf("exit %lu\n", code);
    fflush(stdout);
    return 0;
}

static int command(void) {
    got_ctrl_c = CreateEventW(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(note, TRUE);
    HANDLE started = OpenEventW(EVENT_MODIFY_STATE, FALSE, STARTED);
    if (!started) {
        fprintf(stderr, "console.exe command: not started by console.exe parent\n");
        return 3;
    }
    SetEvent(started);
    if (WaitForSingleObject(got_ctrl_c, 300000) != WAIT_OBJECT_0) return 4;
    Sleep(1000);
    return 7;
}

static int parent(wchar_t *cmdline) {
    HANDLE started = CreateEventW(NULL, TRUE, FALSE, STARTED);
    STARTUPINFOW si = {sizeof si};
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    /* A console of its own, shared with what it starts: Ctrl-C goes to a console. */
    FreeConsole();
    if (!AllocConsole()) {
        fprintf(stderr, "console.exe: no console (error %lu)\n", GetLastError());
        return 5;
    }
    PROCESS_INFORMATION pi;
    if (!CreateProcessW(NULL, cmdline, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "console.exe: cannot start the command (error %lu)\n", GetLastError());
        return 5;
    }
    SetConsoleCtrlHandler(ignore, TRUE);
    HANDLE either[2] = {started, pi.hProcess};
    if (WaitForMultipleObjects(2, either, FALSE, 300000) != WAIT_OBJECT_0) {
        fprintf(stderr, "console.exe: the command under test never started\n");
    } else if (!GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)) {
        fprintf(stderr, "console.exe: no Ctrl-C (error %lu)\n", GetLastError());
    }
    return report_exit(pi.hProcess);
}

static int status(wchar_t *cmdline) {
    STARTUPINFOW si = {sizeof si};
    PROCESS_INFORMATION pi;
    if (!CreateProcessW(NULL, cmdline, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "console.exe: cannot start the command (error %lu)\n", GetLastError());
        return 5;
    }
    return report_exit(pi.hProcess);
}

int wmain(int argc, wchar_t **argv) {
    if (argc == 2 && wcscmp(argv[1], L"command") == 0) return command();
    if (argc == 3 && wcscmp(argv[1], L"parent") == 0) return parent(argv[2]);
    if (argc == 3 && wcscmp(argv[1], L"status") == 0) return status(argv[2]);
    if (argc == 3 && wcscmp(argv[1], L"exit") == 0) ExitProcess((UINT)wcstoul(argv[2], NULL, 10));
    fputs("usage: console.exe parent \"CMDLINE\" | command | status \"CMDLINE\" | exit N\n", stderr);
    return 2;
}
