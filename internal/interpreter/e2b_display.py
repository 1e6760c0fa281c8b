"""Display hooks the Airlock code interpreter installs in every IPython kernel.

* matplotlib figures render as image/png plus an e2b/chart description;
  plt.show() displays (and closes) the open figures, and figures still open
  at the end of a cell are displayed too.
* pandas DataFrames get e2b/data (columns as lists) next to their HTML.
* push_env/pop_env/set_env back the per-execution and sandbox env vars.

Heavy libraries are only touched once user code imports them.
"""

import datetime
import importlib.abc
import importlib.machinery
import importlib.util
import io
import math
import os
import re
import sys

BACKEND = "e2b_mpl_backend"
MAX_DATA_CELLS = 1_000_000  # larger DataFrames get no e2b/data

_env_stack = []
_shown = set()  # ids of figures displayed during the current cell


# --- environment -----------------------------------------------------------

def set_env(values):
    os.environ.update(values)


def push_env(values):
    _env_stack.append({k: os.environ.get(k) for k in values})
    os.environ.update(values)


def pop_env():
    if not _env_stack:
        return
    for key, old in _env_stack.pop().items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


# --- JSON cleaning -----------------------------------------------------------

def _clean(value):
    """Makes value strict-JSON friendly: no NaN, ISO timestamps, plain types."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NaT:
            return None
        if isinstance(value, pd.Timedelta):
            return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.datetime64):
            if np.isnat(value):
                return None
            return pd.Timestamp(value).isoformat() if pd is not None else str(value)
        if isinstance(value, np.generic):
            return _clean(value.item())
        if isinstance(value, np.ndarray):
            return [_clean(v) for v in value.tolist()]
    if isinstance(value, complex):
        return str(value)
    try:
        import decimal

        if isinstance(value, decimal.Decimal):
            return _clean(float(value))
    except ImportError:
        pass
    return str(value)


# --- pandas ----------------------------------------------------------------

def _dataframe_data(df):
    if df.size > MAX_DATA_CELLS:
        return None
    return _clean(df.to_dict(orient="list"))


# --- matplotlib: rendering and the show() backend -----------------------------

def _figure_png(fig):
    _shown.add(id(fig))
    buf = io.BytesIO()
    fig.canvas.print_figure(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _figure_chart(fig):
    _shown.add(id(fig))
    try:
        return _clean(chart_of_figure(fig))
    except Exception:  # a chart we cannot read must not break display
        return None


def _show(*args, **kwargs):
    """plt.show(): display every open figure as display_data, then close."""
    from matplotlib._pylab_helpers import Gcf

    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    managers = Gcf.get_all_fig_managers()
    for manager in managers:
        display(manager.canvas.figure)
    for manager in managers:
        Gcf.destroy(manager)


class _Hooks(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the backend module and configures matplotlib and PIL when the
    user's code first imports them."""

    def __init__(self):
        self._configured = set()

    def find_spec(self, name, path=None, target=None):
        if name == BACKEND:
            return importlib.machinery.ModuleSpec(name, self)
        configure = _ON_IMPORT.get(name)
        if configure is None or name in self._configured:
            return None
        self._configured.add(name)
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            configure(module)

        spec.loader.exec_module = exec_module
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        from matplotlib.backend_bases import FigureManagerBase
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        module.FigureCanvas = FigureCanvasAgg
        module.FigureManager = FigureManagerBase
        module.show = _show
        module.draw_if_interactive = lambda *args, **kwargs: None


def _configure_matplotlib(mpl):
    wanted = os.environ.get("MPLBACKEND", "").strip().lower()
    if wanted in ("", "agg"):
        mpl.rcParams["backend"] = "module://" + BACKEND
    try:
        import matplotlib.axes

        _record_boxes(matplotlib.axes)
    except Exception:
        pass


def _configure_pil(image_module):
    """Image.show() and Image.save() display the image as a result, as in
    E2B's interpreter: there is no viewer to open, and an agent saving an
    image wants to see it."""
    cls = image_module.Image
    if getattr(cls, "_e2b_display", False):
        return
    from IPython.display import display

    save = cls.save

    def show_image(self, title=None, **kwargs):
        display(self)

    def save_and_display(self, fp, format=None, **params):
        save(self, fp, format, **params)
        # Only saves to a file by name: rendering the PNG result itself
        # saves into a buffer.
        if isinstance(fp, (str, os.PathLike)):
            display(self)

    cls.show = show_image
    cls.save = save_and_display
    cls._e2b_display = True


_ON_IMPORT = {"matplotlib": _configure_matplotlib, "PIL.Image": _configure_pil}


def _pre_run_cell(*args):
    _shown.clear()


def _post_run_cell(*args):
    """Displays figures left open by the cell, like the inline backend."""
    if "matplotlib.pyplot" not in sys.modules:
        return
    from matplotlib._pylab_helpers import Gcf
    from IPython.display import display

    managers = Gcf.get_all_fig_managers()
    for manager in managers:
        fig = manager.canvas.figure
        if id(fig) not in _shown:
            display(fig)
    for manager in managers:
        Gcf.destroy(manager)
    _shown.clear()


# --- installation -------------------------------------------------------------

def _dict_formatter(mime):
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class DictFormatter(BaseFormatter):
        format_type = Unicode(mime)
        print_method = ObjectName("_repr_e2b_never_")
        _return_type = (dict,)

    return DictFormatter


def install(ip):
    formatters = ip.display_formatter.formatters
    for mime in ("e2b/chart", "e2b/data"):
        if mime not in formatters:
            formatters[mime] = _dict_formatter(mime)(parent=ip.display_formatter)
    formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", _figure_png)
    formatters["e2b/chart"].for_type_by_name("matplotlib.figure", "Figure", _figure_chart)
    formatters["e2b/data"].for_type_by_name("pandas.core.frame", "DataFrame", _dataframe_data)
    if not any(isinstance(f, _Hooks) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hooks())
    for name, configure in _ON_IMPORT.items():
        if name in sys.modules:
            configure(sys.modules[name])
    ip.events.register("pre_run_cell", _pre_run_cell)
    ip.events.register("post_run_cell", _post_run_cell)


# --- chart extraction ---------------------------------------------------------

_UNIT = re.compile(r"[\(\[]\s*([^\(\)\[\]]+?)\s*[\)\]]\s*$")


def _text(s):
    s = (s or "").strip()
    return s or None


def _unit(label):
    m = _UNIT.search(label or "")
    return m.group(1) if m else None


def chart_of_figure(fig):
    axes = [ax for ax in fig.axes if ax.get_visible() and not _is_colorbar(ax)]
    if not axes:
        return None
    fig.canvas.draw()  # tick labels exist only after a draw
    if len(axes) == 1:
        return chart_of_axes(axes[0])
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else None
    return {
        "type": "superchart",
        "title": _text(title),
        "elements": [chart_of_axes(ax) for ax in axes],
    }


def _is_colorbar(ax):
    return ax.get_label() == "<colorbar>" or hasattr(ax, "_colorbar")


def _axis_kind(axis):
    """linear/log/... from the scale, or datetime/categorical from the units."""
    from matplotlib import dates

    converter = axis.get_converter() if hasattr(axis, "get_converter") else axis.converter
    if isinstance(converter, (dates.DateConverter, dates._SwitchableDateConverter)):
        return "datetime"
    if converter is not None and type(converter).__name__ == "StrCategoryConverter":
        return "categorical"
    return axis.get_scale()


def _categories(axis):
    units = axis.units
    mapping = getattr(units, "_mapping", None) or {}
    return {v: k for k, v in mapping.items()}


def _converter(axis, kind):
    """Maps data coordinates back to what the user plotted."""
    if kind == "datetime":
        from matplotlib import dates

        def conv(v):
            try:
                return dates.num2date(v).replace(tzinfo=None).isoformat()
            except (ValueError, OverflowError):
                return None

        return conv
    if kind == "categorical":
        names = _categories(axis)
        return lambda v: names.get(int(round(v)), v) if v == v else None
    return lambda v: v


def _labels(ax):
    x_label, y_label = _text(ax.get_xlabel()), _text(ax.get_ylabel())
    return {
        "x_label": x_label,
        "y_label": y_label,
        "x_unit": _unit(x_label),
        "y_unit": _unit(y_label),
    }


def _ticks(axis, kind, prefix):
    lo, hi = sorted(axis.get_view_interval())
    conv = _converter(axis, kind)
    locs, labels = [], []
    for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()):
        if lo - 1e-9 * abs(hi - lo) <= loc <= hi + 1e-9 * abs(hi - lo):
            locs.append(conv(float(loc)))
            labels.append(label.get_text())
    return {prefix + "_ticks": locs, prefix + "_tick_labels": labels, prefix + "_scale": kind}


def chart_of_axes(ax):
    base = {"title": _text(ax.get_title())}
    if getattr(ax, "_e2b_boxes", None):
        return {"type": "box_and_whisker", **base, **_labels(ax), "elements": _box_elements(ax)}
    from matplotlib.container import BarContainer
    from matplotlib.patches import Wedge

    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    if wedges:
        return {"type": "pie", **base, "elements": _pie_elements(wedges)}
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    if bars:
        return {"type": "bar", **base, **_labels(ax), "elements": _bar_elements(ax, bars)}
    lines = [ln for ln in ax.get_lines() if _is_data_line(ax, ln)]
    scatters = _scatters(ax)
    if lines or scatters:
        kind = "line" if lines else "scatter"
        xk, yk = _axis_kind(ax.xaxis), _axis_kind(ax.yaxis)
        xc, yc = _converter(ax.xaxis, xk), _converter(ax.yaxis, yk)
        if lines:
            elements = [
                {"label": ln.get_label(), "points": _points(ln.get_xydata(), xc, yc)} for ln in lines
            ]
        else:
            elements = [
                {"label": c.get_label(), "points": _points(c.get_offsets(), xc, yc)} for c in scatters
            ]
        return {
            "type": kind,
            **base,
            **_labels(ax),
            **_ticks(ax.xaxis, xk, "x"),
            **_ticks(ax.yaxis, yk, "y"),
            "elements": elements,
        }
    return {"type": "unknown", **base, "elements": []}


def _is_data_line(ax, line):
    if not line.get_visible() or len(line.get_xdata()) == 0:
        return False
    # axhline/axvline and friends live partly in axes coordinates.
    return line.get_transform() == ax.transData


def _scatters(ax):
    from matplotlib.collections import PathCollection

    return [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _points(xy, xc, yc):
    out = []
    for x, y in xy:
        try:
            out.append([xc(float(x)), yc(float(y))])
        except (TypeError, ValueError):
            continue
    return out


def _tick_names(axis):
    names = {}
    for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()):
        if label.get_text():
            names[float(loc)] = label.get_text()
    return names


def _bar_elements(ax, containers):
    elements = []
    for container in containers:
        group = container.get_label()
        if not group or group.startswith("_"):
            group = ""
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        axis = ax.yaxis if horizontal else ax.xaxis
        names = _tick_names(axis)
        for rect in container.patches:
            if horizontal:
                center, size, value = rect.get_y() + rect.get_height() / 2, rect.get_height(), rect.get_width()
            else:
                center, size, value = rect.get_x() + rect.get_width() / 2, rect.get_width(), rect.get_height()
            label = None
            best = None
            for loc, name in names.items():
                dist = abs(loc - center)
                if dist <= abs(size) / 2 + 1e-9 and (best is None or dist < best):
                    label, best = name, dist
            if label is None:
                label = str(_num(center))
            elements.append({"label": label, "group": group, "value": _num(value)})
    return elements


def _pie_elements(wedges):
    # pie() computes its fractions in float32, so a 90% slice spans
    # 323.99999141693115 degrees in float64; rounding the span to float32,
    # the precision it was made with, gives back the 324 the user meant.
    import numpy

    return [
        {"label": w.get_label(), "angle": _num(numpy.float32(abs(w.theta2 - w.theta1))), "radius": _num(w.r)}
        for w in wedges
    ]


def _box_elements(ax):
    elements = []
    names = None
    for stats, positions, horizontal in ax._e2b_boxes:
        axis = ax.yaxis if horizontal else ax.xaxis
        if names is None:
            names = _tick_names(axis)
        for i, st in enumerate(stats):
            pos = positions[i] if positions is not None and i < len(positions) else i + 1
            label = st.get("label")
            if label is None:
                label = names.get(float(pos), str(pos))
            elements.append(
                {
                    "label": str(label),
                    "min": _num(st["whislo"]),
                    "first_quartile": _num(st["q1"]),
                    "median": _num(st["med"]),
                    "third_quartile": _num(st["q3"]),
                    "max": _num(st["whishi"]),
                    "outliers": [_num(v) for v in st.get("fliers", [])],
                }
            )
    return elements


def _record_boxes(mpl_axes):
    """Wraps Axes.bxp so box plots keep their statistics for extraction."""
    original = mpl_axes.Axes.bxp
    if getattr(original, "_e2b", False):
        return

    def bxp(self, bxpstats, positions=None, *args, **kwargs):
        result = original(self, bxpstats, positions, *args, **kwargs)
        vert = kwargs.get("vert", True)
        horizontal = kwargs.get("orientation") == "horizontal" or vert is False
        boxes = getattr(self, "_e2b_boxes", None) or []
        boxes.append((list(bxpstats), list(positions) if positions is not None else None, horizontal))
        self._e2b_boxes = boxes
        return result

    bxp._e2b = True
    mpl_axes.Axes.bxp = bxp
