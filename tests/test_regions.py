"""Reading forced-photometry targets: DS9 region files and coordinate lists."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from photutils.aperture import region_to_aperture

from aperflow.regions import RegionFileError, read_coordinates, read_ds9, read_targets

HEADER = "# Region file format: DS9 version 4.1\nglobal color=green\n"


def _write(tmp_path, text, name="r.reg"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_supported_shapes_sky_and_pixel(tmp_path):
    path = _write(
        tmp_path,
        HEADER
        + "fk5\n"
        + 'circle(150.1,2.2,0.25") # text={star01}\n'
        + 'ellipse(150.1,2.2,1",0.5",30) # text={gal}\n'
        + 'annulus(150.1,2.2,1",2") # text={ring}\n'
        + 'ellipse(150.1,2.2,1",0.5",2",1",30) # text={ering}\n'
        + "image\n"
        + "circle(11,21,5) # text={pix}\n"
        + 'icrs;circle(10:00:24,+02:12:00,0.5")\n',
    )
    targets = read_ds9(path)
    assert targets.problems == []
    assert targets.ids == ["star01", "gal", "ring", "ering", "pix", "r_L10"]
    kinds = [t.kind for t in targets]
    assert kinds == ["circle", "ellipse", "circle_annulus", "ellipse_annulus", "circle", "circle"]
    assert [t.is_sky for t in targets] == [True, True, True, True, False, True]
    # DS9 image coordinates are 1-based; aperflow's are 0-based
    pix = targets.targets[4].region
    assert (pix.center.x, pix.center.y, pix.radius) == (10.0, 20.0, 5.0)
    assert targets.targets[0].region.radius.to_value(u.arcsec) == pytest.approx(0.25)
    sexa = targets.targets[5].region.center
    assert sexa.ra.deg == pytest.approx(150.1) and sexa.dec.deg == pytest.approx(2.2)
    assert targets.targets[0].origin.endswith("r.reg:4")


def test_other_shapes_refused_naming_the_line_good_lines_still_load(tmp_path):
    path = _write(
        tmp_path,
        HEADER
        + "fk5\n"
        + 'circle(150.1,2.2,0.25") # text={a}\n'
        + 'box(150.1,2.2,1",1",0) # text={box}\n'
        + "polygon(150.1,2.2,150.2,2.2,150.2,2.3)\n"
        + "point(150.1,2.2) # point=x\n"
        + '-circle(150.1,2.2,0.25")\n'
        + 'circle(150.1,abc,0.25") # text={bad}\n'
        + "circle(150.1) # text={short}\n"
        + 'circle(150.2,2.2,0.25") # text={b}\n'
        + '# vector(150.1,2.2,1",30)\n',
    )
    targets = read_ds9(path)
    assert targets.ids == ["a", "b"]
    text = "\n".join(targets.problems)
    assert len(targets.problems) == 7, text
    for line, word in ((5, "box"), (6, "polygon"), (7, "point"), (12, "vector")):
        assert f"r.reg:{line}: shape '{word}' is not supported" in text
    assert "r.reg:8: exclude regions are not supported" in text
    assert "r.reg:9: malformed region" in text and "abc" in text
    assert "r.reg:10: malformed region" in text


def test_unsupported_frame_and_missing_frame(tmp_path):
    path = _write(
        tmp_path,
        HEADER
        + 'circle(150.1,2.2,0.25") # text={noframe}\n'
        + "physical\n"
        + "circle(10,10,3) # text={phys}\n"
        + "image\n"
        + "circle(10,10,3) # text={ok}\n",
    )
    targets = read_ds9(path)
    assert targets.ids == ["ok"]
    assert any("r.reg:3: no supported coordinate system" in p for p in targets.problems)
    assert any(
        "r.reg:4: coordinate system 'physical' is not supported" in p for p in targets.problems
    )
    assert any("r.reg:5:" in p for p in targets.problems)


def test_multi_radius_annulus_duplicate_ids_and_background(tmp_path):
    path = _write(
        tmp_path,
        HEADER
        + "fk5\n"
        + 'annulus(150.1,2.2,1",2",3") # text={ring}\n'
        + 'circle(150.1,2.2,0.25") # text={s}\n'
        + 'circle(150.2,2.2,0.25") # text={s}\n'
        + 'annulus(150.1,2.2,1",1.5") # background text={s}\n'
        + 'annulus(150.1,2.2,1",1.5") # background text={nobody}\n',
    )
    targets = read_ds9(path)
    assert targets.ids == ["ring_1", "ring_2", "s", "s_2"]
    r1, r2 = targets.targets[0].region, targets.targets[1].region
    assert (r1.inner_radius.to_value(u.arcsec), r1.outer_radius.to_value(u.arcsec)) == (1, 2)
    assert (r2.inner_radius.to_value(u.arcsec), r2.outer_radius.to_value(u.arcsec)) == (2, 3)
    assert targets.targets[2].sky_region is not None  # DS9 background region attached
    assert targets.targets[2].sky_region.outer_radius.to_value(u.arcsec) == 1.5
    assert targets.targets[3].sky_region is None
    assert any("id 's' is used before; renamed 's_2'" in p for p in targets.problems)
    assert any("'nobody' matches no source" in p for p in targets.problems)


def test_ellipse_position_angle_consistent_between_ds9_and_lists(tmp_path):
    """A DS9 ellipse angle runs from the RA axis; a list's theta is a PA east of north.
    Both must give the same pixel aperture."""
    reg = _write(tmp_path, HEADER + 'fk5\nellipse(150,2,1",0.5",120) # text={g}\n')
    csv = _write(tmp_path, "id,ra,dec,a,b,theta\ng,150,2,1,0.5,30\n", "t.csv")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150, 2]
    wcs.wcs.crpix = [50, 50]
    wcs.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    a = region_to_aperture(read_ds9(reg).targets[0].region).to_pixel(wcs)
    b = region_to_aperture(read_coordinates(csv).targets[0].region).to_pixel(wcs)
    assert a.a == pytest.approx(20.0, rel=1e-6) and a.b == pytest.approx(10.0, rel=1e-6)
    assert (a.a, a.b) == pytest.approx((b.a, b.b))
    assert np.cos(2 * (a.theta - b.theta)).value == pytest.approx(1.0, abs=1e-9)
    # PA 30 deg east of north on a north-up east-left image: 120 deg from +x
    assert np.cos(2 * (b.theta.to_value(u.deg) - 120.0) * np.pi / 180) == pytest.approx(1.0)


def test_coordinate_list_csv(tmp_path):
    path = _write(
        tmp_path,
        "ID,RA,Dec,radius,a,b,theta\n"
        "s1,150.1,2.2,,,,\n"
        "s2,150.2,2.3,0.4,,,\n"
        "g,150.3,2.4,,2.0,1.0,45\n"
        ",150.4,2.5,,,,\n"
        "bad,abc,2.5,,,,\n"
        "sx,10:00:24,+02:12:00,,,,\n",
        "list.csv",
    )
    targets = read_coordinates(path, default_radius_arcsec=0.3)
    assert targets.ids == ["s1", "s2", "g", "row4", "sx"]
    assert [t.kind for t in targets] == ["circle", "circle", "ellipse", "circle", "circle"]
    assert targets.targets[0].region.radius.to_value(u.arcsec) == pytest.approx(0.3)
    assert targets.targets[1].region.radius.to_value(u.arcsec) == pytest.approx(0.4)
    g = targets.targets[2].region
    assert g.width.to_value(u.arcsec) == pytest.approx(4.0)
    assert g.height.to_value(u.arcsec) == pytest.approx(2.0)
    assert targets.targets[4].region.center.ra.deg == pytest.approx(150.1)
    assert len(targets.problems) == 1 and "row 5" in targets.problems[0]


def test_coordinate_list_ecsv_with_units(tmp_path):
    from astropy.table import Table

    t = Table(
        {
            "id": ["a", "b"],
            "ra": [150.1, 150.2] * u.deg,
            "dec": [2.2, 2.3] * u.deg,
            "radius": [500.0, 1000.0] * u.mas,
        }
    )
    path = tmp_path / "list.ecsv"
    t.write(path)
    targets = read_coordinates(path)
    radii = [x.region.radius.to_value(u.arcsec) for x in targets]
    assert radii == pytest.approx([0.5, 1.0])


def test_coordinate_list_needs_ra_dec(tmp_path):
    path = _write(tmp_path, "id,x,y\na,1,2\n", "xy.csv")
    with pytest.raises(RegionFileError, match="without column"):
        read_coordinates(path)


def test_read_targets_merges_files_and_reports_missing(tmp_path):
    reg = _write(tmp_path, HEADER + 'fk5\ncircle(150.1,2.2,0.25") # text={a}\n')
    csv = _write(tmp_path, "id,ra,dec\na,150.2,2.3\nb,150.3,2.4\n", "t.csv")
    targets = read_targets([reg, tmp_path / "missing.reg"], csv, 0.5)
    assert targets.ids == ["a", "a_2", "b"]
    assert any("missing.reg: cannot read the region file" in p for p in targets.problems)
    assert SkyCoord(targets.targets[1].region.center).ra.deg == pytest.approx(150.2)


def test_demo_region_file(demo_dir):
    targets = read_targets(
        demo_dir / "forced" / "regions.reg", demo_dir / "forced" / "targets.csv"
    )
    assert targets.problems == []
    assert len(targets) == 26
    assert (
        "galaxy" in targets.ids and targets.targets[targets.ids.index("galaxy")].kind == "ellipse"
    )
