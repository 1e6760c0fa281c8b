// Airlock's Java kernel for the code interpreter: JShell behind the
// Jupyter protocol of JJava's kernel base (org.dflib.jjava:jjava-jupyter).
// Snippets run in this JVM (JShell's local execution), so System.out goes
// to the cell's stream and a cell's value is the real object, rendered as
// text/plain without JShell's quoting.
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;

import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.ExpressionSnippet;
import jdk.jshell.JShell;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;
import jdk.jshell.VarSnippet;
import jdk.jshell.execution.LocalExecutionControl;
import jdk.jshell.spi.ExecutionControl;
import jdk.jshell.spi.ExecutionControlProvider;
import jdk.jshell.spi.ExecutionEnv;

import org.dflib.jjava.jupyter.channels.JupyterConnection;
import org.dflib.jjava.jupyter.kernel.BaseKernel;
import org.dflib.jjava.jupyter.kernel.BaseKernelBuilder;
import org.dflib.jjava.jupyter.kernel.KernelConnectionProperties;
import org.dflib.jjava.jupyter.kernel.LanguageInfo;
import org.dflib.jjava.jupyter.kernel.ReplacementOptions;
import org.dflib.jjava.jupyter.kernel.display.DisplayData;

public final class AirlockJavaKernel extends BaseKernel {
    /** The first line of a cell the server sends to change the environment. */
    static final String ENV_DIRECTIVE = "//airlock:env ";

    private final JShell shell;
    private final Capturing control;
    private final Deque<Map<String, String[]>> saved = new ArrayDeque<>();

    private AirlockJavaKernel(Builder b) {
        super(b.name(), b.version(), new LanguageInfo("java", Runtime.version().toString(), "text/x-java-source", ".jshell", "java", "java", null),
                List.of(), b.history(), b.io(), b.comms(), b.renderer(), b.parser(), b.magics(), false, b.styler());
        control = new Capturing();
        shell = JShell.builder()
                .executionEngine(new ExecutionControlProvider() {
                    public String name() { return "airlock"; }
                    public ExecutionControl generate(ExecutionEnv env, Map<String, String> params) { return control; }
                }, Map.of())
                .compilerOptions("--class-path", System.getProperty("java.class.path"))
                .build();
        // Warm the compiler so the first cell is not the slow one.
        shell.eval("int $airlockWarm = 0;");
    }

    @Override
    public Object evalRaw(String code) {
        if (code.startsWith(ENV_DIRECTIVE)) {
            env(code.substring(ENV_DIRECTIVE.length()).trim());
            return null;
        }
        control.interrupted = false;
        SourceCodeAnalysis sca = shell.sourceCodeAnalysis();
        String rest = code;
        Object value = null;
        boolean hasValue = false;
        while (!rest.isBlank()) {
            SourceCodeAnalysis.CompletionInfo ci = sca.analyzeCompletion(rest);
            if (ci.completeness() == SourceCodeAnalysis.Completeness.EMPTY) {
                break;
            }
            String src;
            if (ci.completeness().isComplete()) {
                src = ci.source();
                rest = ci.remaining();
            } else {
                src = rest; // let the compiler say what is wrong
                rest = "";
            }
            hasValue = false;
            value = null;
            for (SnippetEvent ev : shell.eval(src)) {
                if (ev.causeSnippet() != null) {
                    continue; // a dependent snippet's update
                }
                Snippet s = ev.snippet();
                if (control.interrupted) {
                    throw new InterruptedException("the cell was interrupted");
                }
                if (ev.status() == Snippet.Status.REJECTED) {
                    throw new CompilationException(diagnostics(s));
                }
                if (ev.exception() != null) {
                    throw userException(ev.exception());
                }
                if (ev.status() == Snippet.Status.RECOVERABLE_NOT_DEFINED || ev.status() == Snippet.Status.RECOVERABLE_DEFINED) {
                    List<String> missing = shell.unresolvedDependencies((jdk.jshell.DeclarationSnippet) s).collect(Collectors.toList());
                    if (ev.status() == Snippet.Status.RECOVERABLE_NOT_DEFINED) {
                        throw new CompilationException("cannot find symbol: " + String.join(", ", missing));
                    }
                }
                boolean expr = s instanceof ExpressionSnippet && !"void".equals(((ExpressionSnippet) s).typeName())
                        || s instanceof VarSnippet && s.subKind() == Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND;
                if (expr && ev.value() != null) {
                    hasValue = true;
                    value = control.take(ev.value());
                }
            }
        }
        return hasValue ? new Shown(value) : null;
    }

    /** A cell's value; null is shown as "null", as JShell does. */
    static final class Shown {
        final Object value;
        Shown(Object value) { this.value = value; }
        @Override public String toString() { return String.valueOf(value); }
    }

    @Override
    public DisplayData eval(String code) {
        Object v = evalRaw(code);
        if (v == null) {
            return null;
        }
        Object real = ((Shown) v).value;
        DisplayData d = real == null ? new DisplayData("null") : getRenderer().render(real);
        if (d == null || !d.hasDataForType(org.dflib.jjava.jupyter.kernel.display.mime.MIMEType.TEXT_PLAIN)) {
            DisplayData t = new DisplayData(String.valueOf(real));
            if (d != null) {
                t.assign(d);
            }
            d = t;
        }
        return d;
    }

    private RuntimeException userException(jdk.jshell.JShellException e) {
        Throwable real = control.thrown;
        control.thrown = null;
        if (e instanceof UnresolvedReferenceException) {
            return new CompilationException("unresolved reference: " + ((UnresolvedReferenceException) e).getSnippet().source().trim());
        }
        if (real == null) {
            String name = e instanceof EvalException ? ((EvalException) e).getExceptionClassName() : e.getClass().getName();
            return new EvalError(name + ": " + e.getMessage());
        }
        if (real instanceof RuntimeException) {
            return (RuntimeException) real;
        }
        if (real instanceof Exception) {
            return AirlockJavaKernel.<RuntimeException>sneaky(real);
        }
        return new EvalError(real); // an Error would end the shell thread
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> RuntimeException sneaky(Throwable t) throws T {
        throw (T) t;
    }

    private String diagnostics(Snippet s) {
        String src = s.source();
        List<String> msgs = new ArrayList<>();
        shell.diagnostics(s).forEach((Diag d) -> {
            if (d.isError()) {
                msgs.add(d.getMessage(Locale.ENGLISH) + " (at: " + excerpt(src, d) + ")");
            }
        });
        return msgs.isEmpty() ? "the snippet was rejected: " + src.trim() : String.join("\n", msgs);
    }

    private static String excerpt(String src, Diag d) {
        int a = (int) Math.max(0, Math.min(src.length(), d.getStartPosition()));
        int b = (int) Math.max(a, Math.min(src.length(), d.getEndPosition()));
        String x = src.substring(a, b).trim();
        return x.isEmpty() ? src.trim() : x;
    }

    // ENV_DIRECTIVE cells: {"op": "set"|"push"|"pop", "vars": {...}}. Env
    // vars are both system properties (what E2B's Java kernel sets) and the
    // process environment (System.getenv, child processes).
    private void env(String json) {
        Map<String, Object> req = new Gson().fromJson(json, new TypeToken<Map<String, Object>>() {}.getType());
        String op = String.valueOf(req.get("op"));
        @SuppressWarnings("unchecked")
        Map<String, String> vars = req.get("vars") == null ? Map.of() : (Map<String, String>) req.get("vars");
        switch (op) {
            case "push": {
                Map<String, String[]> old = new LinkedHashMap<>();
                for (String k : vars.keySet()) {
                    old.put(k, new String[] {System.getProperty(k), System.getenv(k)});
                }
                saved.push(old);
                vars.forEach(AirlockJavaKernel::setVar);
                break;
            }
            case "pop": {
                Map<String, String[]> old = saved.poll();
                if (old != null) {
                    old.forEach((k, v) -> {
                        if (v[0] == null) System.clearProperty(k); else System.setProperty(k, v[0]);
                        setEnv(k, v[1]);
                    });
                }
                break;
            }
            default:
                vars.forEach(AirlockJavaKernel::setVar);
        }
    }

    private static void setVar(String k, String v) {
        System.setProperty(k, v);
        setEnv(k, v);
    }

    /** Changes this process's environment map (needs --add-opens java.base/java.util). */
    @SuppressWarnings("unchecked")
    private static void setEnv(String k, String v) {
        try {
            Map<String, String> view = System.getenv();
            Field f = view.getClass().getDeclaredField("m");
            f.setAccessible(true);
            Map<String, String> env = (Map<String, String>) f.get(view);
            if (v == null) env.remove(k); else env.put(k, v);
        } catch (ReflectiveOperationException | RuntimeException e) {
            System.err.println("airlock: cannot set environment variable " + k + ": " + e);
        }
    }

    // The traceback shows the cell's own frames, not the kernel's machinery
    // that runs it.
    @Override
    public List<String> formatError(Throwable e) {
        List<String> lines = new ArrayList<>();
        Throwable first = e instanceof EvalError && e.getCause() != null ? e.getCause() : e;
        for (Throwable t = first; t != null; t = t.getCause()) {
            lines.add((t == first ? "" : "Caused by: ") + t);
            int shown = 0;
            for (StackTraceElement f : t.getStackTrace()) {
                if (++shown > 40) {
                    lines.add("\t...");
                    break;
                }
                if (f.getClassName().startsWith(AirlockJavaKernel.class.getName())) {
                    break;
                }
                if (f.getClassName().startsWith("REPL.")) {
                    lines.add("\tat " + f.getMethodName().replace("do_it$", "<cell>") + " (in the cell)"); // JShell's wrapper line numbers mean nothing to the user
                } else if (!f.getClassName().startsWith("jdk.internal.reflect.") && !f.getClassName().equals("java.lang.reflect.Method")) {
                    lines.add("\tat " + f);
                }
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return lines;
    }

    @Override
    public DisplayData inspect(String code, int at, boolean extra) {
        return null;
    }

    @Override
    public ReplacementOptions complete(String code, int at) {
        int[] anchor = new int[1];
        List<SourceCodeAnalysis.Suggestion> s = shell.sourceCodeAnalysis().completionSuggestions(code, at, anchor);
        if (s.isEmpty()) {
            return null;
        }
        return new ReplacementOptions(s.stream().map(SourceCodeAnalysis.Suggestion::continuation).distinct().collect(Collectors.toList()), anchor[0], at);
    }

    @Override
    public String isComplete(String code) {
        SourceCodeAnalysis.CompletionInfo ci = shell.sourceCodeAnalysis().analyzeCompletion(code);
        if (ci.completeness().isComplete() && ci.remaining().isBlank()) {
            return IS_COMPLETE_YES;
        }
        return ci.completeness() == SourceCodeAnalysis.Completeness.DEFINITELY_INCOMPLETE ? "    " : IS_COMPLETE_BAD;
    }

    @Override
    public void interrupt() {
        control.interrupted = true;
        shell.stop();
    }

    @Override
    public void onShutdown(boolean restart) {
        shell.close();
    }

    /** A cell that does not compile. */
    static final class CompilationException extends RuntimeException {
        CompilationException(String msg) { super(msg); }
    }

    /** A cell that was interrupted. */
    static final class InterruptedException extends RuntimeException {
        InterruptedException(String msg) { super(msg); }
    }

    /** An Error (or an exception lost on the way) thrown by a cell. */
    static final class EvalError extends RuntimeException {
        EvalError(String msg) { super(msg); }
        EvalError(Throwable cause) { super(cause.toString(), cause); }
    }

    // Capturing runs each snippet through capture(), which keeps the real
    // value under a key and hands JShell the key instead of the value's
    // string form; LocalExecutionControl still runs it on its own thread,
    // so stop() works as in jshell.
    public static final class Capturing extends LocalExecutionControl {
        private static final AtomicLong seq = new AtomicLong();
        private static final Map<String, Object> values = new ConcurrentHashMap<>();
        private static volatile Method target;
        volatile Throwable thrown;
        volatile boolean interrupted;
        private static Capturing current;

        Capturing() { current = this; }

        @Override
        protected String invoke(Method doit) throws Exception {
            target = doit;
            thrown = null;
            values.clear();
            return super.invoke(Capturing.class.getMethod("capture"));
        }

        public static Object capture() throws Throwable {
            try {
                Object v = target.invoke(null);
                String key = "\u0001" + seq.incrementAndGet();
                values.put(key, v == null ? Capturing.class : v);
                return key;
            } catch (InvocationTargetException e) {
                current.thrown = e.getCause();
                throw e.getCause();
            }
        }

        /** The value JShell reported as the quoted key, or the report itself. */
        Object take(String reported) {
            String key = reported.length() >= 2 && reported.startsWith("\"") ? unquote(reported) : reported;
            Object v = values.remove(key);
            if (v == null) {
                return reported;
            }
            return v == Capturing.class ? null : v;
        }

        private static String unquote(String s) {
            return s.substring(1, s.length() - 1).replace("\\u0001", "\u0001").replace("\\001", "\u0001");
        }
    }

    static final class Builder extends BaseKernelBuilder<Builder, AirlockJavaKernel> {
        String name() { return buildName(); }
        String version() { return buildVersion(); }
        org.dflib.jjava.jupyter.kernel.history.HistoryManager history() { return buildHistoryManager(); }
        org.dflib.jjava.jupyter.kernel.JupyterIO io() { return buildJupyterIO(buildJupyterIOEncoding()); }
        org.dflib.jjava.jupyter.kernel.comm.CommManager comms() { return buildCommManager(); }
        org.dflib.jjava.jupyter.kernel.display.Renderer renderer() { return buildRenderer(); }
        org.dflib.jjava.jupyter.kernel.magic.MagicParser parser() { return magicParser != null ? magicParser : new org.dflib.jjava.jupyter.kernel.magic.MagicParser("%", "%%", buildMagicTranspiler()); }
        org.dflib.jjava.jupyter.kernel.magic.MagicsRegistry magics() { return buildMagicsRegistry(); }
        org.dflib.jjava.jupyter.kernel.util.StringStyler styler() { return buildErrorStyler(); }

        @Override
        public AirlockJavaKernel build() {
            return new AirlockJavaKernel(this);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: AirlockJavaKernel CONNECTION_FILE");
            System.exit(2);
        }
        String conn = Files.readString(Path.of(args[0]), StandardCharsets.UTF_8);
        JupyterConnection c = new JupyterConnection(KernelConnectionProperties.parse(conn));
        AirlockJavaKernel k = new Builder().name("java").version("1").build();
        k.becomeHandlerForConnection(c);
        c.connect();
        c.waitUntilClose();
        k.onShutdown(false);
    }
}
