/* Runs when the dynamic loader maps the preload object: the agent starts
 * (after the Go runtime's own initialization, which the exported call
 * waits for) before the program's main. */
extern void trapemuPreloadInit(void);

__attribute__((constructor)) static void trapemu_preload_ctor(void) { trapemuPreloadInit(); }
